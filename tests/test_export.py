"""giltrace export --format chrome: Chrome trace-event JSON of real runs.

Every export is checked against the trace's own report (threads, handoffs,
findings) and against the rules of the two viewers it is meant for: spans
that nest on each thread's track, flows with one start and one end that
bind to the held slices of the releasing and the acquiring thread under
both Perfetto's and catapult's (chrome://tracing) binding rules (emulated
below from their importers), names for every thread, timestamps rebased to
the trace start with nanosecond decimals.
"""
import bisect
import collections
import json
import os
import random
import re
import signal
import subprocess
import time
from decimal import Decimal

import pytest

from helpers import (GILTRACE, GILTRACE_SAN, assert_recorded, check_json, giltrace_run, of, report, run_scenario,
                     write_script)

INTERPRETER = "/usr/bin/python3.11"

# Threads that hand the GIL to each other many times, one of them named
# through pthread_setname_np with characters JSON must escape.
HANDOFFS = r"""
import ctypes, sys, threading, time
sys.setswitchinterval(1e-4)
libc = ctypes.CDLL(None)
libc.pthread_self.restype = ctypes.c_void_p
def loop(rename):
    if rename:
        libc.pthread_setname_np(ctypes.c_void_p(libc.pthread_self()), 'q"b\\s\u00e9'.encode())
    n = 0
    for i in range(300000):
        n += i
    for _ in range(100):
        time.sleep(0)
ts = [threading.Thread(target=loop, args=(i == 0,)) for i in range(3)]
for t in ts: t.start()
for t in ts: t.join()
print("handoffs ok")
"""
ESCAPED_NAME = 'q"b\\s\u00e9'


def export(trace, out, *args, binary=GILTRACE):
    """giltrace export [args] -o out trace; (proc, document or None)."""
    proc = subprocess.run([binary, "export", *args, "-o", str(out), str(trace)], capture_output=True, text=True,
                          timeout=300)
    assert "runtime error" not in proc.stderr and "AddressSanitizer" not in proc.stderr, proc.stderr
    doc = None
    if proc.returncode == 0:
        with open(out, "rb") as f:
            doc = json.loads(f.read().decode("utf-8"), parse_float=Decimal)
    return proc, doc


def ns(ts):
    """A ts (microseconds, Decimal) as integer nanoseconds; exact."""
    v = Decimal(ts) * 1000
    assert v == v.to_integral_value(), f"ts {ts} is finer than a nanosecond"
    return int(v)


# ---- what the viewers do with flows (see tools/render/export-chrome.c) -----------

def perfetto_flow_bindings(events):
    """Perfetto's JSON importer: events sorted by ts, at equal ts X events first
    (longest first) then file order; an X or a thread-scope instant closes the
    slices of its track that ended by its ts and is pushed; an "s", or an "f"
    with bp "e", binds to the topmost slice of its track (flow_tracker.cc).
    {(id, ph): slice}"""
    order = []
    for i, e in enumerate(events):
        if e["ph"] == "M":
            continue
        t = ns(e["ts"])
        if e["ph"] == "X":
            order.append((t, 0, -ns(e["dur"]), i))
        else:
            order.append((t, 1, 0, i))
    order.sort()
    stacks = collections.defaultdict(list)
    bound = {}
    for t, _, _, i in order:
        e = events[i]
        track = (e["pid"], e["tid"])
        if e["ph"] == "X" or (e["ph"] == "i" and e.get("s", "t") == "t"):
            # SliceTracker::MaybeCloseStack: pop what ended before t, and
            # what ends at t unless both are instants
            dur = ns(e["dur"]) if e["ph"] == "X" else 0
            stack = stacks[track]
            while stack and (stack[-1][0] < t or (stack[-1][0] == t and not (stack[-1][1] == 0 and dur == 0))):
                stack.pop()
            stack.append((t + dur, dur, e))
        elif e["ph"] in ("s", "f"):
            assert e["ph"] == "s" or e.get("bp") == "e", e
            stack = stacks[track]
            bound[(e["id"], e["ph"])] = stack[-1][2] if stack else None
    return bound


def catapult_flow_bindings(events):
    """catapult's importer (chrome://tracing): per thread, slices (X events and
    thread-scope instants, in file order) nest by containment; a flow event
    binds to the slice found by findSliceAtTs: the top-level slice whose closed
    interval holds ts (at a shared edge, the one that starts there), then the
    same among its children.  {(id, ph): slice}"""
    slices = collections.defaultdict(list)
    for i, e in enumerate(events):
        if e["ph"] == "X" or (e["ph"] == "i" and e.get("s", "t") == "t"):
            start = ns(e["ts"])
            end = start + (ns(e["dur"]) if e["ph"] == "X" else 0)
            slices[(e["pid"], e["tid"])].append({"start": start, "end": end, "event": e, "index": i, "sub": []})

    def nest(items):
        items.sort(key=lambda s: (s["start"], s["index"]))
        top = []
        for s in items:
            parent = top[-1] if top else None
            placed = False
            while parent is not None and parent["start"] <= s["start"] and s["end"] <= parent["end"]:
                placed = True
                if parent["sub"] and parent["sub"][-1]["start"] <= s["start"] and \
                        s["end"] <= parent["sub"][-1]["end"]:
                    parent = parent["sub"][-1]
                    continue
                parent["sub"].append(s)
                break
            if not placed:
                top.append(s)
        return top

    starts = {}

    def find(level, t):
        if id(level) not in starts:
            starts[id(level)] = [s["start"] for s in level]
        i = bisect.bisect_left(starts[id(level)], t)
        for j in (i, i - 1):
            if 0 <= j < len(level) and level[j]["start"] <= t <= level[j]["end"]:
                return level[j]
        return None

    tops = {track: nest(items) for track, items in slices.items()}
    bound = {}
    for e in events:
        if e["ph"] not in ("s", "f"):
            continue
        s = find(tops.get((e["pid"], e["tid"]), []), ns(e["ts"]))
        while s is not None:
            child = find(s["sub"], ns(e["ts"]))
            if child is None:
                break
            s = child
        bound[(e["id"], e["ph"])] = s
    return bound


# ---- the checks every export must pass ------------------------------------------

def check_chrome_trace(doc, trace, rep=None, complete=True, viewers=True):
    """Structural checks of an export; with the trace's report `rep`, also that
    threads and handoffs agree with it.  complete: the trace is undamaged, so
    every handoff has its arrow.  viewers: check how Perfetto and catapult
    bind the flows (not for random garbage, which can make a thread hold two
    GILs at once, where a flow's end cannot sit at the start of its slice)."""
    assert doc["displayTimeUnit"] == "ns"
    other = doc["otherData"]
    assert other["trace"] == str(trace)
    events = doc["traceEvents"]
    assert isinstance(events, list) and events
    pid = other["pid"]
    if rep is not None:
        assert pid == rep["process"]["pid"]
        assert other["interpreter"] == rep["interpreter"]["version"]
        assert other["interpreter_full"] == rep["interpreter"]["version_full"]

    meta = [e for e in events if e["ph"] == "M"]
    timed = [e for e in events if e["ph"] != "M"]
    assert {e["ph"] for e in timed} <= {"X", "i", "s", "f"}
    for e in events:
        assert e["pid"] == pid and isinstance(e["tid"], int), e
    for e in timed:
        assert ns(e["ts"]) >= 0, e
    process_names = [e for e in meta if e["name"] == "process_name"]
    assert len(process_names) == 1 and process_names[0]["args"]["name"]
    names = {e["tid"]: e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    for e in timed:
        assert e["tid"] in names, f"no thread_name for tid {e['tid']}"
    assert all(isinstance(n, str) and n for n in names.values())

    # spans: per thread, held, waiting and (3.13+) parking-lot slices that never overlap
    spans = collections.defaultdict(list)
    for e in timed:
        if e["ph"] == "X":
            assert e["name"] in ("GIL held", "GIL wait", "parking lot"), e
            assert e["cat"] == ("park" if e["name"] == "parking lot" else "gil"), e
            assert ns(e["dur"]) > 0, e
            spans[e["tid"]].append((ns(e["ts"]), ns(e["ts"]) + ns(e["dur"]), e["name"]))
    for tid, items in spans.items():
        items.sort()
        for (s0, e0, _), (s1, e1, _) in zip(items, items[1:]):
            assert s1 >= e0, f"tid {tid}: span at {s1} starts before the previous one ends at {e0}"
    held = {tid: [(s, e) for s, e, name in items if name == "GIL held"] for tid, items in spans.items()}
    held_starts = {tid: [s for s, _ in items] for tid, items in held.items()}

    def in_held(tid, t):
        """t in [start, end] of a held span of tid (they do not overlap)"""
        i = bisect.bisect_right(held_starts.get(tid, []), t) - 1
        return i >= 0 and held[tid][i][0] <= t <= held[tid][i][1]

    # flows: one start and one end each, releasing -> acquiring thread
    flows = collections.defaultdict(dict)
    for e in timed:
        if e["ph"] in ("s", "f"):
            assert e["ph"] not in flows[e["id"]], f"flow {e['id']} has two '{e['ph']}' events"
            flows[e["id"]][e["ph"]] = e
    pairs = collections.Counter()
    for fid, ends in flows.items():
        assert set(ends) == {"s", "f"}, f"flow {fid} lacks an end: {ends}"
        s, f = ends["s"], ends["f"]
        assert s["name"] == f["name"] and s.get("cat") == f.get("cat")
        assert f["bp"] == "e"
        assert s["tid"] != f["tid"]
        assert ns(s["ts"]) <= ns(f["ts"])
        assert in_held(s["tid"], ns(s["ts"])), f"flow {fid} starts outside a held span of {s['tid']}"
        assert in_held(f["tid"], ns(f["ts"])), f"flow {fid} ends outside a held span of {f['tid']}"
        pairs[(s["tid"], f["tid"])] += 1
    assert other["handoffs"] == len(flows)

    # ... and the viewers bind each end to a held slice of that thread
    perfetto = perfetto_flow_bindings(events) if viewers else {}
    catapult = catapult_flow_bindings(events) if viewers else {}
    for fid, ends in (flows.items() if viewers else ()):
        for ph, e in ends.items():
            slice_ = perfetto[(fid, ph)]
            assert slice_ is not None and slice_["ph"] == "X" and slice_["name"] == "GIL held" \
                and slice_["tid"] == e["tid"], f"Perfetto binds flow {fid} '{ph}' to {slice_}"
            found = catapult[(fid, ph)]
            assert found is not None, f"catapult finds no slice for flow {fid} '{ph}'"
            ok = found["event"]["name"] == "GIL held"
            if not ok and found["event"]["ph"] == "i":
                # an instant at exactly that ts, inside the held slice: the
                # same place on screen
                ok = in_held(e["tid"], found["start"])
            assert ok, f"catapult binds flow {fid} '{ph}' to {found['event']}"

    if rep is not None:
        tids = {t["tid"] for t in rep["threads"]}
        assert set(names) == tids
        for t in rep["threads"]:
            # the one thread label: "name (tid)", or the tid; a native
            # name the Python one does not begin with, in brackets
            native = t["native_name"] if t["name"] and t["native_name"] and \
                not t["name"].startswith(t["native_name"]) else None
            expected = f"{t['name']} [{native}] ({t['tid']})" if native else \
                f"{t['name']} ({t['tid']})" if t["name"] else str(t["tid"])
            assert names[t["tid"]] == expected == t["label"]
        if complete:
            assert other["handoffs_without_arrow"] == 0
            assert len(flows) == rep["handoffs"]["count"]
            assert pairs == collections.Counter(
                {(p["from_tid"], p["to_tid"]): p["count"] for p in rep["handoffs"]["pairs"]})
            # held time per thread as the report counts it
            for t in rep["threads"]:
                assert sum(e - s for s, e in held.get(t["tid"], [])) == t["gil_hold_ns"], t
    return events


def instants(events, cat=None):
    return [e for e in events if e["ph"] == "i" and (cat is None or e["cat"] == cat)]


# ---- real interpreters --------------------------------------------------------------

def test_handoffs_export(python, tmp_path):
    script = write_script(tmp_path, HANDOFFS)
    proc, trace = giltrace_run(python, script, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "handoffs ok\n"
    rep = report(trace)
    out = tmp_path / "trace.json"
    proc, doc = export(trace, out)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    events = check_chrome_trace(doc, trace, rep)
    assert rep["handoffs"]["count"] > 10  # 3 threads, forced switches every 100 us
    # nanoseconds survive: some ts has decimals
    assert any(ns(e["ts"]) % 1000 for e in events if "ts" in e)
    # the renamed thread's native name, escaped and read back, beside its
    # Python name
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert any(re.match(r"Thread-\d+( \(loop\))? \[" + re.escape(ESCAPED_NAME) + r"\] \(", n) for n in names), names
    assert '\\"' in out.read_text(encoding="utf-8")
    # the end of each thread: an exit mark on its track (not the process
    # exit, which is the end of the trace)
    exits = {e["tid"] for e in instants(events, "thread")}
    ended = {t["tid"] for t in rep["threads"] if t["exit"] and t["exit"]["how"] != "process_exit"}
    assert ended and ended <= exits
    assert rep["process"]["pid"] not in exits
    assert instants(events, "finding") == []


def test_finding_is_an_instant_on_its_thread(python, extension, tmp_path):
    proc, trace = run_scenario(python, "gilstate_after_finalize.py", tmp_path, extension)
    assert proc.returncode == 1, proc.stderr
    result, _ = check_json(trace)
    (finding,) = of(result, "gilstate-after-finalize")
    out = tmp_path / "finding.json"
    proc, doc = export(trace, out, "--format", "chrome")
    assert proc.returncode == 0, proc.stderr
    events = check_chrome_trace(doc, trace, report(trace))
    marks = [e for e in instants(events, "finding") if e["name"] == "gilstate-after-finalize"]
    assert len(marks) == 1, instants(events, "finding")
    mark = marks[0]
    assert mark["s"] == "t" and mark["tid"] == finding["thread"]["tid"]
    assert mark["args"]["detector"] == "gilstate-after-finalize"
    assert mark["args"]["severity"] == "error"
    assert mark["args"]["what"] == finding["what"]
    assert ns(mark["ts"]) == finding["at_ns"]
    assert len(instants(events, "finding")) == len(result["findings"])
    # finalization began: one global mark, before the finding
    (fin,) = instants(events, "finalization")
    assert fin["s"] == "g" and ns(fin["ts"]) <= ns(mark["ts"])


def test_clean_program_has_no_finding_marks(python, tmp_path):
    proc, trace = run_scenario(python, "clean_join.py", tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "clean.json"
    proc, doc = export(trace, out)
    assert proc.returncode == 0, proc.stderr
    rep = report(trace)
    events = check_chrome_trace(doc, trace, rep)
    assert instants(events, "finding") == []
    assert doc["otherData"]["findings"] == 0
    # the 4 workers ended (returned, or pthread_exit on 3.8), not holding
    # the GIL, and their thread states were freed
    ended = {e["tid"]: e for e in instants(events, "thread")}
    workers = [t["tid"] for t in rep["threads"] if not t["main"]]
    assert len(workers) == 4
    for tid in workers:
        assert ended[tid]["args"]["how"] in ("return", "pthread_exit")
        assert ended[tid]["args"]["held_gil"] is False
    assert len(instants(events, "tstate")) >= 4


def test_standard_output(tmp_path):
    if not os.access(INTERPRETER, os.X_OK):
        pytest.skip(f"{INTERPRETER} not installed")
    proc, trace = run_scenario(INTERPRETER, "clean_join.py", tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([GILTRACE, "export", "-o", "-", trace], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout.decode("utf-8"), parse_float=Decimal)
    check_chrome_trace(doc, trace, assert_recorded(report(trace), workers=4))


# ---- hostile input (ASan + UBSan build) ------------------------------------------------

@pytest.fixture(scope="module")
def real_trace(tmp_path_factory):
    if not os.access(INTERPRETER, os.X_OK):
        pytest.skip(f"{INTERPRETER} not installed")
    tmp = tmp_path_factory.mktemp("export-real")
    script = write_script(tmp, HANDOFFS)
    proc, trace = giltrace_run(INTERPRETER, script, tmp)
    assert proc.returncode == 0, proc.stderr
    assert_recorded(report(trace), workers=3)  # events for the damage to reach
    return open(trace, "rb").read()


def test_not_a_trace_exits_2(tmp_path):
    rnd = random.Random(1)
    for name, data in (("text.gtr", b"not a trace\n"), ("random.gtr", bytes(rnd.getrandbits(8) for _ in range(9000))),
                       ("empty.gtr", b"")):
        (tmp_path / name).write_bytes(data)
        out = tmp_path / (name + ".json")
        proc, _ = export(tmp_path / name, out, binary=GILTRACE_SAN)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("giltrace: ") and name in lines[0], proc.stderr
        assert not out.exists()
    proc, _ = export(tmp_path / "missing.gtr", tmp_path / "m.json", binary=GILTRACE_SAN)
    assert proc.returncode == 2 and "missing.gtr" in proc.stderr


@pytest.mark.parametrize("keep", [4096 + 70000, 4096 + 65536 + 65536 + 1000, -5000])
def test_cut_trace_exports_what_was_read(tmp_path, real_trace, keep):
    trace = tmp_path / "cut.gtr"
    trace.write_bytes(real_trace[:keep])
    out = tmp_path / "cut.json"
    proc, doc = export(trace, out, binary=GILTRACE_SAN)
    assert proc.returncode == 0, proc.stderr
    assert "giltrace: note: " in proc.stderr, proc.stderr
    assert doc["otherData"]["notes"] >= 1
    check_chrome_trace(doc, trace, complete=False)


@pytest.mark.parametrize("seed", range(3))
def test_corrupt_trace_never_crashes(tmp_path, real_trace, seed):
    rnd = random.Random(seed)
    data = bytearray(real_trace)
    for _ in range(100):
        data[rnd.randrange(4096, len(data))] = rnd.getrandbits(8)
    trace = tmp_path / "x.gtr"
    trace.write_bytes(bytes(data))
    proc, doc = export(trace, tmp_path / "x.json", binary=GILTRACE_SAN)
    assert proc.returncode in (0, 2), proc.stderr
    if doc is not None:
        check_chrome_trace(doc, trace, complete=False, viewers=False)


def test_killed_process_exports_truncated(tmp_path):
    """SIGKILL mid-run: the trace is truncated, the export says so and holds
    what was committed."""
    if not os.access(INTERPRETER, os.X_OK):
        pytest.skip(f"{INTERPRETER} not installed")
    script = write_script(tmp_path, "import threading, time, sys\n"
                          "def loop():\n"
                          "    while True: time.sleep(0)\n"
                          "for _ in range(2): threading.Thread(target=loop, daemon=True).start()\n"
                          "print('ready', flush=True)\n"
                          "time.sleep(60)\n")
    trace = tmp_path / "killed.gtr"
    env = dict(os.environ, LD_PRELOAD=os.path.join(os.path.dirname(GILTRACE), "libgiltrace.so"),
               GILTRACE_OPTIONS=f"output={trace}:check=0")
    proc = subprocess.Popen([INTERPRETER, script], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    proc, doc = export(trace, tmp_path / "killed.json", binary=GILTRACE_SAN)
    assert proc.returncode == 0, proc.stderr
    assert "is truncated" in proc.stderr
    assert doc["otherData"]["truncated"] is True
    events = check_chrome_trace(doc, trace, report(str(trace)), complete=True)
    assert [e for e in events if e["ph"] in ("s", "f")]


def test_strings_are_escaped(tmp_path, real_trace):
    """A path with a quote, a backslash, a control character and a byte that is
    not UTF-8: the JSON stays valid and says U+FFFD for that byte."""
    name = b'we"ird\\n\x01\xff.gtr'
    path = os.path.join(os.fsencode(tmp_path), name)
    with open(path, "wb") as f:
        f.write(real_trace)
    out = tmp_path / "weird.json"
    proc = subprocess.run([GILTRACE_SAN, "export", "-o", str(out), path], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_bytes().decode("utf-8"), parse_float=Decimal)
    assert doc["otherData"]["trace"] == os.fsdecode(path).encode("utf-8", "surrogateescape") \
        .decode("utf-8", "replace")


# ---- usage -------------------------------------------------------------------------------------

def test_usage_errors_name_the_fix(tmp_path, real_trace):
    trace = tmp_path / "t.gtr"
    trace.write_bytes(real_trace)
    cases = [
        (["export", str(trace)], "-o OUT.json"),
        (["export", "--format", "svg", "-o", str(tmp_path / "x.json"), str(trace)], "'chrome'"),
        (["export", "-o", str(tmp_path / "x.json")], "TRACE"),
        (["export", "-o", str(tmp_path / "x.json"), str(trace), str(trace)], "exactly one TRACE"),
        (["export", "--bogus", "-o", str(tmp_path / "x.json"), str(trace)], "--bogus"),
        (["export", "-o", str(trace), str(trace)], "the trace itself"),
    ]
    for args, hint in cases:
        proc = subprocess.run([GILTRACE, *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (args, proc.stderr)
        assert hint in proc.stderr, (args, proc.stderr)
        assert not (tmp_path / "x.json").exists()
    assert trace.read_bytes() == real_trace
    proc = subprocess.run([GILTRACE, "export", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "ui.perfetto.dev" in proc.stdout
