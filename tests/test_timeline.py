"""`giltrace timeline`: lanes per thread in the terminal, on real traces."""
import os
import re
import subprocess

import pytest

from helpers import GILTRACE, GILTRACE_SAN, check_json, giltrace_run, of, run_scenario, write_script

WIDTH = 110
LABEL = 22


def timeline(trace, *args, binary=GILTRACE, status=0):
    proc = subprocess.run([binary, "timeline", "--width", str(WIDTH), *args, trace], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == status, proc.stderr
    assert "runtime error" not in proc.stderr
    return proc


def lanes(text):
    """{tid: row} of the lane lines, labelled "name (tid)" or "tid"."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(?:\S.*? \((\d+)\)|(\d+))$", line[:LABEL].rstrip())
        if m and len(line) == WIDTH and not line.startswith(" "):
            out[int(m.group(1) or m.group(2))] = line[LABEL:]
    return out


def test_finding_is_marked_on_its_lane_after_the_finalization_bar(python, extension, tmp_path):
    _, trace = run_scenario(python, "gilstate_after_finalize.py", tmp_path, extension)
    result, _ = check_json(trace)
    (f,) = of(result, "gilstate-after-finalize")
    out = timeline(trace).stdout  # default: around finalization
    assert "\033[" not in out  # not a terminal: no colour
    rows = lanes(out)
    assert len(rows) == 2, out
    main, faulty = rows[result["pid"]], rows[f["thread"]["tid"]]
    assert "!" in faulty and "!" not in main
    bar = main.index("|")
    assert faulty.index("!") >= bar
    assert "#" in main[:bar]  # main ran with the GIL before finalization
    assert f"gilstate-after-finalize: {f['what']}" in out
    # zoomed in on the finding: it stays on its lane, after the bar
    at = f["at_ns"]
    out = timeline(trace, "--from", f"{max(at - 200_000, 0)}ns", "--to", f"{at + 200_000}ns").stdout
    rows = lanes(out)
    faulty = rows[f["thread"]["tid"]]
    assert "!" in faulty


def test_every_lane_fits_the_width_and_colour_only_when_asked(python, tmp_path):
    _, trace = run_scenario(python, "clean_pool.py", tmp_path, check=False)
    out = timeline(trace, "--around", "whole").stdout
    rows = lanes(out)
    assert len(rows) >= 5  # main and the pool's workers
    picture = out.split("\n\n")[1:3]  # axis and lanes, legend
    for line in "\n".join(picture).splitlines():
        assert len(line) <= WIDTH, line
    assert set("".join(rows.values())) <= set(" -~=#|XPF?!")
    coloured = timeline(trace, "--around", "whole", "--color", "always").stdout
    assert "\033[30;42m#" in coloured
    assert re.sub(r"\033\[[0-9;]*m", "", coloured) == out


def test_window_errors_name_the_fix(tmp_path):
    python = "/usr/bin/python3.11"
    if not os.access(python, os.X_OK):
        pytest.skip("apt-get install python3.11")
    script = write_script(tmp_path, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    _, trace = giltrace_run(python, script, tmp_path)
    whole = timeline(trace, binary=GILTRACE_SAN).stdout  # no finalization: the whole run
    assert "window +0 ns to" in whole and "finalization" not in whole.splitlines()[1]
    err = timeline(trace, "--around", "finalize", status=2).stderr
    assert "no finalization; use --around whole or --from/--to" in err
    assert "needs a unit" in timeline(trace, "--from", "12", status=2).stderr
    assert "is empty" in timeline(trace, "--from", "5ms", "--to", "1ms", status=2).stderr
    assert "--color takes auto, always or never" in timeline(trace, "--color", "pink", status=2).stderr
    proc = subprocess.run([GILTRACE, "timeline", trace, trace], capture_output=True, text=True)
    assert proc.returncode == 2 and "usage: giltrace timeline" in proc.stderr


def test_cut_short_trace_shows_what_was_read(tmp_path):
    python = "/usr/bin/python3.11"
    if not os.access(python, os.X_OK):
        pytest.skip("apt-get install python3.11")
    script = write_script(tmp_path, "import threading\n"
                                    "ts = [threading.Thread(target=sum, args=(range(10**5),)) for _ in range(3)]\n"
                                    "[t.start() for t in ts]; [t.join() for t in ts]\n")
    _, trace = giltrace_run(python, script, tmp_path)
    data = open(trace, "rb").read()
    cut = str(tmp_path / "cut.gtr")
    open(cut, "wb").write(data[:len(data) * 2 // 3])
    out = timeline(cut, binary=GILTRACE_SAN).stdout
    assert "note: " in out and lanes(out)
    bad = str(tmp_path / "bad.gtr")
    open(bad, "wb").write(b"not a trace at all")
    assert "not a giltrace trace" in timeline(bad, binary=GILTRACE_SAN, status=2).stderr
