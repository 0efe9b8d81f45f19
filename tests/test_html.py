"""`giltrace report --html`, opened in a real headless browser (Debian's chromium).

Each page is loaded with chromium --headless: --dump-dom gives the DOM after
the page's script ran (data-ready="1", no data-errors, one lane per thread,
the finding's mark), --screenshot gives what is drawn (the finding's colour
inside the offending thread's lane once the page is opened at the finding's
link).  chromium's console goes to stderr (--enable-logging=stderr): the
page logs nothing, so any console line (an uncaught error, a blocked fetch)
fails the test.  The traces come from real interpreters (the `python`
fixture) running tests/scenarios/ and small scripts.

Without chromium every test here is skipped with the fix (apt-get install
chromium).  Pure standard library and Debian's python3-pil.
"""
import html
import html.parser
import json
import os
import re
import shutil
import signal
import subprocess

import pytest

from helpers import GILTRACE, GILTRACE_SAN, ROOT, report, write_script

SCENARIOS = os.path.join(ROOT, "tests", "scenarios")
CHROMIUM = shutil.which("chromium")
CHROMIUM_TIMEOUT = 90

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")

FINDING_RGB = (0xff, 0x00, 0xff)  # --finding in html-report.c: used for nothing else


# ---- helpers ----------------------------------------------------------------------

def render(trace, out, *args, binary=GILTRACE):
    """giltrace report --html out [args] trace; returns the page's text."""
    proc = subprocess.run([binary, "report", "--html", str(out), *args, str(trace)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr  # also: no sanitizer report
    with open(out, encoding="utf-8") as f:
        return f.read()


def chromium(tmp_path, page, *args, fragment=""):
    """Run headless chromium on file://page[#fragment]; returns its stdout.

    Fails on a timeout, a non-zero exit, or any message the page wrote to
    the console (uncaught errors, blocked fetches and console.* calls all
    appear there, at the same log level)."""
    cmd = [CHROMIUM, "--headless", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
           "--force-device-scale-factor=1", "--enable-logging=stderr", "--v=0",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    if os.geteuid() == 0:
        cmd.append("--no-sandbox")  # chromium refuses to run as root with its sandbox
    cmd.append("file://" + os.path.abspath(page) + fragment)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=CHROMIUM_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium did not finish in {CHROMIUM_TIMEOUT} s: {' '.join(cmd)}")
    assert proc.returncode == 0, err[-4000:]
    console = [line for line in err.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == [], "\n".join(console)
    return out


class Dom(html.parser.HTMLParser):
    """The elements of a page: tag, attributes (unescaped) and direct text."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.elements = []
        self.open = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elements.append(element)
        if tag not in ("meta", "br", "rect", "line", "input", "link", "img"):
            self.open.append(element)

    def handle_startendtag(self, tag, attrs):
        self.elements.append({"tag": tag, "attrs": dict(attrs), "text": ""})

    def handle_endtag(self, tag):
        while self.open:
            if self.open.pop()["tag"] == tag:
                break

    def handle_data(self, data):
        if self.open:
            self.open[-1]["text"] += data

    def all(self, tag=None, cls=None, **attrs):
        found = []
        for e in self.elements:
            if tag and e["tag"] != tag:
                continue
            if cls and cls not in e["attrs"].get("class", "").split():
                continue
            if any(e["attrs"].get(k.replace("_", "-")) != v for k, v in attrs.items()):
                continue
            found.append(e)
        return found

    def one(self, tag=None, cls=None, **attrs):
        found = self.all(tag, cls, **attrs)
        assert len(found) == 1, (tag, cls, attrs, found)
        return found[0]


def loaded_dom(tmp_path, page, fragment=""):
    """The DOM after the page's script ran; asserts it ran without errors."""
    dom = Dom(chromium(tmp_path, page, "--window-size=1400,900", "--dump-dom", fragment=fragment))
    body = dom.one("body")
    assert "data-errors" not in body["attrs"], body["attrs"]["data-errors"]
    assert body["attrs"].get("data-ready") == "1", "the page's script did not finish"
    return dom


def probe(tmp_path, text, script, *args):
    """Load a copy of the page with `script` run after the page's own; the
    script leaves its results, JSON, in body's data-probe."""
    assert text.count("</body>") == 1
    probed = tmp_path / "probed.html"
    probed.write_text(text.replace("</body>", f"<script>\n{script}\n</script>\n</body>"))
    dom = Dom(chromium(tmp_path, probed, "--window-size=1400,900", *args, "--dump-dom"))
    body = dom.one("body")["attrs"]
    assert "data-errors" not in body, body["data-errors"]
    assert body.get("data-ready") == "1", "the page's script did not finish"
    assert "data-probe" in body, "the probe did not finish"
    return json.loads(body["data-probe"]), dom


def lanes(dom):
    return dom.all("g", cls="lane")


def assert_self_contained(text):
    """Nothing in the page can fetch anything."""
    assert "default-src 'none'" in text  # the CSP meta: a fetch that slipped in would fail
    assert not re.search(r"<(link|img|iframe|object|embed|audio|video|source|image|use)\b", text, re.I)
    assert not re.search(r"\b(src|srcset|xlink:href)\s*=", text, re.I)
    assert not re.search(r"url\((?!#)|@import", text, re.I)  # url(#id): a reference inside the page
    for href in re.findall(r'\bhref="([^"]*)"', text):
        assert href.startswith("#"), href
    for url in re.findall(r"\w+://[^\s\"'<>]*", text):
        assert url == "http://www.w3.org/2000/svg", url  # a namespace, never fetched


def run_scenario(python, script, tmp_path, ext_dir):
    env = dict(os.environ, PYTHONPATH=ext_dir)
    trace = tmp_path / (script.replace(".py", "") + ".gtr")
    proc = subprocess.run([GILTRACE, "run", "-o", str(trace), "--", python, os.path.join(SCENARIOS, script)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    return proc, trace


def matching_pixels(image, rgb, box, tolerance=24):
    """(x, y) of the pixels of colour rgb inside box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    pixels = image.load()
    found = []
    for y in range(max(0, y0), min(image.height, y1)):
        for x in range(max(0, x0), min(image.width, x1)):
            p = pixels[x, y]
            if all(abs(p[i] - rgb[i]) <= tolerance for i in range(3)):
                found.append((x, y))
    return found


# ---- a page with a finding --------------------------------------------------------

def test_finding_page(python, extension, tmp_path):
    """gilstate_after_finalize.py: the page loads cleanly, has one lane per
    thread, and opened at the finding's link it zooms to the finding and
    shows its mark, highlighted, in the offending thread's lane."""
    pil = pytest.importorskip("PIL.Image", reason="python3-pil not installed (apt-get install python3-pil)")
    proc, trace = run_scenario(python, "gilstate_after_finalize.py", tmp_path, extension)
    assert proc.stdout == "main exits\n", proc.stderr
    rep = report(str(trace))
    (finding,) = [f for f in rep["findings"] if f["id"] == "gilstate-after-finalize"]
    n = rep["findings"].index(finding) + 1  # the page numbers findings in this order, from 1
    offender = finding["thread"]["tid"]

    page = tmp_path / "report.html"
    text = render(trace, page, binary=GILTRACE_SAN)  # under ASan and UBSan
    assert_self_contained(text)
    # the finding's text block is check's, escaped
    assert f'id="finding-{n}-text"' in text
    assert html.escape(f"giltrace ERROR: gilstate-after-finalize: {finding['title']}", quote=True) in text

    dom = loaded_dom(tmp_path, page, fragment=f"#finding-{n}")
    assert dom.one("body")["attrs"].get("data-focus") == f"finding-{n}"
    tids = [int(g["attrs"]["data-tid"]) for g in lanes(dom)]
    assert len(tids) == len(set(tids)), "a thread has two lanes"
    assert set(tids) <= {t["tid"] for t in rep["threads"]}
    main = [t["tid"] for t in rep["threads"] if t["main"]]
    assert offender in tids and set(main) <= set(tids)
    # lanes are stacked from the top of the plot, one lane height each
    root = dom.one("svg", id="timeline")["attrs"]
    plot = dom.one("svg", id="plot")["attrs"]
    lane_h, plot_y, label_w = int(root["data-lane-h"]), int(plot["y"]), int(plot["x"])
    assert [int(g["attrs"]["data-y"]) for g in lanes(dom)] == [i * lane_h for i in range(len(tids))]
    for i, g in enumerate(lanes(dom)):
        label = dom.one("text", id=f"lname-{i}")
        assert g["attrs"]["data-tid"] in label["text"]

    # the mark: in the offender's lane, highlighted, linking to the text
    mark = dom.one("a", id=f"mark-finding-{n}")["attrs"]
    lane = tids.index(offender)
    assert int(mark["data-tid"]) == offender and int(mark["data-lane"]) == lane
    assert "hl" in mark["class"].split() and mark["href"] == f"#finding-{n}-text"
    assert dom.one("a", cls="show-finding", data_finding=str(n))["attrs"]["href"] == f"#finding-{n}"
    # zoomed in, around the finding's time
    t0, t1 = (int(x) for x in root["data-view"].split())
    window = int(plot["data-to-ns"]) - int(plot["data-from-ns"])
    assert t1 - t0 < window / 4, (t0, t1, window)
    assert t0 <= finding["at_ns"] <= t1

    # what is drawn: the finding's colour in the offender's lane, 7 px wide
    height = max(900, int(root["height"]) + 100)
    shot = tmp_path / "finding.png"
    chromium(tmp_path, page, f"--window-size=1400,{height}", f"--screenshot={shot}", fragment=f"#finding-{n}")
    image = pil.open(shot).convert("RGB")
    timeline_box = (label_w, plot_y, image.width, plot_y + len(tids) * lane_h)
    lane_top = plot_y + lane * lane_h
    in_lane = matching_pixels(image, FINDING_RGB, (label_w, lane_top, image.width, lane_top + lane_h))
    assert in_lane, f"no finding-coloured pixel in lane {lane} (y {lane_top}..{lane_top + lane_h})"
    row = sorted(x for x, y in in_lane if y == lane_top + lane_h // 2)
    assert row and row[-1] - row[0] + 1 >= 6, f"the mark is not highlighted: {row}"
    # any other finding-coloured pixel is another finding's mark, in its own lane
    finding_lanes = {int(a["attrs"]["data-lane"]) for a in dom.all("a", cls="finding")}
    for x, y in matching_pixels(image, FINDING_RGB, timeline_box):
        assert (y - plot_y) // lane_h in finding_lanes, (x, y)

    # the links, clicked: the text's link zooms (also when the hash is already
    # there), the mark links back to the text
    p, _ = probe(tmp_path, text, LINK_PROBE % {"n": n}, "--virtual-time-budget=5000")
    assert p[0] == f"#finding-{n}:finding-{n}", p
    assert p[1] == f"again:finding-{n}:{root['data-view']}", p
    assert p[2] == f"after-reset:{root['data-view']}", p
    assert p[3] == f"#finding-{n}-text", p


LINK_PROBE = """
(function () {
  var link = document.querySelector('a.show-finding[data-finding="%(n)d"]'), log = [];
  var view = function () { return document.getElementById('timeline').dataset.view; };
  window.addEventListener('hashchange', function () {
    log.push(location.hash + (log.length ? '' : ':' + document.body.dataset.focus));
    if (log.length === 1) {
      document.getElementById('reset').click();
      link.click();  // the same hash: no hashchange, the link's own handler zooms
      log.push('again:' + document.body.dataset.focus + ':' + view());
      document.getElementById('reset').click();
      link.click();
      log.push('after-reset:' + view());
      document.getElementById('mark-finding-%(n)d').dispatchEvent(
        new MouseEvent('click', {bubbles: true, cancelable: true}));
    }
    document.body.dataset.probe = JSON.stringify(log);
  });
  link.click();
})();
"""


def test_one_lane_per_thread_whole_run(python, extension, tmp_path):
    """--around whole: every thread of the trace has exactly one lane,
    labelled with its name (model_thread_name) or tid."""
    proc, trace = run_scenario(python, "gilstate_after_finalize.py", tmp_path, extension)
    assert proc.stdout == "main exits\n", proc.stderr
    rep = report(str(trace))
    page = tmp_path / "whole.html"
    render(trace, page, "--around", "whole")
    dom = loaded_dom(tmp_path, page)
    got = sorted(int(g["attrs"]["data-tid"]) for g in lanes(dom))
    assert got == sorted(t["tid"] for t in rep["threads"])
    plot = dom.one("svg", id="plot")["attrs"]
    assert int(plot["data-from-ns"]) == 0 and int(plot["data-to-ns"]) == rep["wall_ns"]
    names = {t["tid"]: t["name"] for t in rep["threads"]}
    for i, g in enumerate(lanes(dom)):
        tid = int(g["attrs"]["data-tid"])
        label = dom.one("text", id=f"lname-{i}")["text"]
        assert label == (f"{names[tid]} ({tid})" if names[tid] else str(tid))
    # the statistics table: one row per thread
    assert sorted(int(r["attrs"]["data-tid"]) for r in dom.all("tr") if "data-tid" in r["attrs"]) == got
    # GIL states are drawn: the main thread held the GIL at some point
    assert "held" in {s["attrs"].get("data-state") for s in dom.all("g") if s["attrs"].get("data-state")}


# ---- escaping ---------------------------------------------------------------------

NAMES = (b'<i>x&"y</i>', b"'><b>z</b>")   # at most 15 bytes: pthread_setname_np's limit
NAMING_SCRIPT = """\
import ctypes, threading
libc = ctypes.CDLL(None)
libc.pthread_self.restype = ctypes.c_ulong
libc.pthread_setname_np.argtypes = [ctypes.c_ulong, ctypes.c_char_p]
go = threading.Event()
def named(name):
    def run():
        assert libc.pthread_setname_np(libc.pthread_self(), name) == 0
        go.wait()
        sum(range(100000))
    return run
ts = [threading.Thread(target=named(n), name=n.decode()) for n in %r]
for t in ts: t.start()
go.set()
for t in ts: t.join()
"""


def test_markup_in_names_and_paths_is_escaped(python, tmp_path):
    """Thread names (Python's, and the same set with pthread_setname_np) and
    a trace path full of markup come out as text: no element is injected."""
    script = write_script(tmp_path, NAMING_SCRIPT % (NAMES,))
    trace = tmp_path / "<b>t&'1.gtr"
    proc = subprocess.run([GILTRACE, "run", "-o", str(trace), "--", python, script], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rep = report(str(trace))
    names = [n.decode() for n in NAMES]
    assert sorted(t["name"] for t in rep["threads"] if t["name"] in names) == sorted(names), \
        "the shim did not record the names (precondition)"

    page = tmp_path / "names.html"
    text = render(trace, page, "--around", "whole", binary=GILTRACE_SAN)
    assert_self_contained(text)
    assert "&lt;i&gt;x&amp;&quot;y&lt;/i&gt;" in text and "&#39;&gt;&lt;b&gt;z&lt;/b&gt;" in text
    assert "<i>" not in text and "<b>" not in text

    dom = loaded_dom(tmp_path, page)
    assert not dom.all("i") and not dom.all("b"), "markup from the trace became elements"
    labels = [dom.one("text", id=f"lname-{i}")["text"] for i in range(len(lanes(dom)))]
    by_name = {g["attrs"].get("data-name"): g for g in lanes(dom)}
    for name in names:
        assert name in by_name, (name, list(by_name))
        assert f"{name} ({by_name[name]['attrs']['data-tid']})" in labels
    assert dom.all("title")[0]["text"] == "giltrace: <b>t&'1.gtr"  # the page title, first
    cells = [td["text"] for td in dom.all("td")]
    assert all(name in cells for name in names)


# ---- interaction --------------------------------------------------------------------

WHEEL_PROBE = """
(function () {
  var plot = document.getElementById('plot');
  function vb() { return plot.getAttribute('viewBox').split(' ').map(Number); }
  var r = plot.getBoundingClientRect(), x = r.left + r.width / 4, y = r.top + 5;
  var before = vb(), at = before[0] + before[2] / 4;
  plot.dispatchEvent(new WheelEvent('wheel', {deltaY: -600, clientX: x, clientY: y, bubbles: true, cancelable: true}));
  var zoomed = vb();
  plot.dispatchEvent(new PointerEvent('pointerdown', {button: 0, clientX: x, clientY: y, bubbles: true}));
  window.dispatchEvent(new PointerEvent('pointermove', {clientX: x - 100, clientY: y, bubbles: true}));
  window.dispatchEvent(new PointerEvent('pointerup', {clientX: x - 100, clientY: y, bubbles: true}));
  var panned = vb();
  document.getElementById('reset').click();
  // hovering the first lane where it has a bar: the readout names the thread and its state
  var bar = Array.prototype.reduce.call(document.querySelectorAll('#lane-0 rect'), function (best, e) {
    return +e.getAttribute('width') > +best.getAttribute('width') ? e : best; });
  var b = bar.getBoundingClientRect();
  var hx = b.left + b.width / 2, hy = b.top + b.height / 2, under = document.elementFromPoint(hx, hy);
  under.dispatchEvent(new PointerEvent('pointermove', {clientX: hx, clientY: hy, bubbles: true}));
  document.body.dataset.probe = JSON.stringify({before: before, at: at, zoomed: zoomed,
    atAfter: zoomed[0] + zoomed[2] / 4, panned: panned, reset: vb(), plotWidth: r.width,
    ticks: document.querySelectorAll('#axis text').length,
    readout: document.getElementById('readout').textContent,
    state: bar.parentNode.getAttribute('data-state'), under: under === bar});
})();
"""


def test_wheel_zooms_at_the_pointer_drag_pans_reset_restores(simple_trace, tmp_path):
    """The page's own handlers, driven by synthetic events appended to a copy."""
    page = tmp_path / "t.html"
    text = render(simple_trace, page)
    p, dom = probe(tmp_path, text, WHEEL_PROBE)
    columns = int(dom.one("svg", id="plot")["attrs"]["data-columns"])
    assert p["before"] == [0, 0, columns, p["before"][3]]
    assert p["zoomed"][2] < p["before"][2] / 2, p                # zoomed in
    assert abs(p["atAfter"] - p["at"]) < columns * 1e-6, p       # around the pointer
    shift = 100 / p["plotWidth"] * p["zoomed"][2]
    assert abs(p["panned"][0] - (p["zoomed"][0] + shift)) < columns * 1e-6, p  # dragged left: later times
    assert p["panned"][2] == p["zoomed"][2]
    assert p["reset"] == p["before"]
    assert p["ticks"] >= 3                                      # the axis was drawn
    label = dom.one("text", id="lname-0")["attrs"]["data-label"]
    assert p["under"], "the first bar is covered by something"
    assert p["readout"].startswith("+") and p["readout"].endswith(f" \u00b7 {label} \u00b7 {p['state']}"), p


# ---- damaged and unusable traces, usage -----------------------------------------------

KILLED_SCRIPT = """\
import os, threading, time
def work():
    for _ in range(3000):
        time.sleep(0)
ts = [threading.Thread(target=work) for _ in range(3)]
for t in ts: t.start()
for t in ts: t.join()
os.kill(os.getpid(), 9)
"""


def test_truncated_trace_renders_what_was_read(python, tmp_path):
    """A killed process's trace, cut short: the page shows the truncation,
    the reader's notes and the lanes of the events that could be read."""
    script = write_script(tmp_path, KILLED_SCRIPT)
    trace = tmp_path / "killed.gtr"
    proc = subprocess.run([GILTRACE, "run", "-o", str(trace), "--", python, script], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 128 + 9, proc.stderr
    data = trace.read_bytes()
    cut = tmp_path / "cut.gtr"
    for keep in sorted({len(data) * k // 16 for k in range(1, 16)}, reverse=True):
        cut.write_bytes(data[:keep])
        rep = report(str(cut))
        if rep["notes"] and rep["truncated"] and rep["threads"]:
            break
    else:
        pytest.fail("no cut of the trace gives notes and events (precondition)")

    page = tmp_path / "cut.html"
    render(cut, page, binary=GILTRACE_SAN)
    dom = loaded_dom(tmp_path, page)
    assert "TRUNCATED" in dom.one("p", id="truncated")["text"]
    notes = [li["text"] for li in dom.all("li") if li["text"] in rep["notes"]]
    assert notes == rep["notes"]
    assert lanes(dom), "nothing of what was read is drawn"

    # a trace cut inside its first chunk: no events, still a page
    cut.write_bytes(data[:20000])
    rep = report(str(cut))
    assert rep["threads"] == [] and rep["notes"]
    render(cut, page, binary=GILTRACE_SAN)
    dom = loaded_dom(tmp_path, page)
    assert lanes(dom) == []


def test_unusable_trace_and_usage_errors(tmp_path):
    not_a_trace = tmp_path / "nope.gtr"
    not_a_trace.write_bytes(b"not a trace at all\n" * 10)
    out = tmp_path / "out.html"

    def run(*args):
        return subprocess.run([GILTRACE_SAN, "report", *args], capture_output=True, text=True, timeout=60)

    proc = run("--html", str(out), str(not_a_trace))
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("giltrace: ") and "nope.gtr" in lines[0], proc.stderr
    assert not out.exists()

    for args, says in [
        (["--html", str(out), str(not_a_trace), str(not_a_trace)], "not a giltrace trace"),   # no page, no index
        (["--html", str(out)], "usage:"),
        (["--html", str(out), "--json", str(not_a_trace)], "cannot be combined"),
        (["--from", "1ms", str(not_a_trace)], "add --html"),
        (["--around", "whole", str(not_a_trace)], "add --html"),
        (["--html", str(out), "--around", "middle", str(not_a_trace)], "'finalize' or 'whole'"),
        (["--html", str(out), "--from", "12", str(not_a_trace)], "needs a unit"),
    ]:
        proc = run(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert says in proc.stderr, (args, proc.stderr)
        assert not out.exists()
