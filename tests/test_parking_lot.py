"""The parking lot (3.13+): a thread that waits for a contended PyMutex, a
stop-the-world or a PyEvent (a thread join) blocks on a semaphore of its own
made with value 0; the shim records each such wait (block-begin, block-end),
and the report, timeline, HTML page and export show who was blocked and for
how long.  In a free-threaded build with the GIL disabled that is how a
thread waits for another at all.  3.8-3.12 have no parking lot: their
threading.Lock is a value-1 semaphore (a PyThread lock), and nothing is
recorded.
"""
import json
import os
import subprocess

import pytest

from helpers import (FREE_THREADED, GILTRACE, assert_model_sound, check_json, dump, errors, report, version_of,
                     write_script)

# Four threads take turns on a threading.Lock and sleep (the GIL released,
# or none) while they hold it: the others wait on the lock.
CONTENDED = """\
import threading, time
lock = threading.Lock()
def work():
    for _ in range(300):
        with lock:
            time.sleep(0.0001)
ts = [threading.Thread(target=work) for _ in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print("done")
"""


def run(python, tmp_path, env=()):
    script = write_script(tmp_path, CONTENDED)
    trace = str(tmp_path / "contended.gtr")
    proc = subprocess.run([GILTRACE, "run", "-o", trace, "--", python, script], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, **dict(env)))
    assert proc.returncode == 0 and proc.stdout == "done\n", proc.stderr
    return trace


def blocks(trace):
    events = [e for e in dump(trace) if e[2] in ("block-begin", "block-end")]
    # each begin is closed by its thread's next block event, an end
    by_thread = {}
    for _, tid, name, _ in events:
        by_thread.setdefault(tid, []).append(name)
    for names in by_thread.values():
        assert names[::2] == ["block-begin"] * len(names[::2]) and names[1::2] == ["block-end"] * len(names[1::2])
    return sum(1 for e in events if e[2] == "block-begin")


def assert_blocked_shown(trace, tmp_path):
    rep = report(trace)
    assert_model_sound(rep)
    workers = [t for t in rep["threads"] if not t["main"]]
    assert len(workers) == 4 and sum(t["blocks"] for t in workers) > 0, workers
    for t in rep["threads"]:
        assert (t["blocks"] > 0) == (t["blocked_ns"] > 0)
        # blocked only without the GIL: the three never overlap on a thread
        assert t["blocked_ns"] + t["gil_hold_ns"] + t["gil_wait_ns"] <= t["last_ns"] - t["first_ns"]
    assert sum(t["blocks"] for t in rep["threads"]) == blocks(trace)
    text = subprocess.run([GILTRACE, "report", trace], capture_output=True, text=True, timeout=60).stdout
    assert "blocked" in [line for line in text.splitlines() if line.lstrip().startswith("tid ")][0]
    timeline = subprocess.run([GILTRACE, "timeline", "--around", "whole", trace], capture_output=True, text=True,
                              timeout=60).stdout
    assert "~ blocked in the parking lot" in timeline
    rows = [line for line in timeline.splitlines()
            if any(line[:22].rstrip().endswith(f"({t['tid']})") for t in workers)]
    assert len(rows) == 4 and any("~" in row for row in rows), timeline
    html = tmp_path / "page.html"
    subprocess.run([GILTRACE, "report", "--html", str(html), "--around", "whole", trace], check=True, capture_output=True,
                   timeout=60)
    assert '<g data-state="blocked"><rect' in html.read_text()
    export = tmp_path / "trace.json"
    subprocess.run([GILTRACE, "export", "-o", str(export), trace], check=True, capture_output=True, timeout=60)
    slices = [e for e in json.loads(export.read_text())["traceEvents"] if e.get("name") == "parking lot"]
    assert slices and all(e["cat"] == "park" and e["ph"] == "X" for e in slices)
    return rep


@pytest.mark.parametrize("python", FREE_THREADED)
def test_free_threaded_waits_are_shown(python, tmp_path):
    trace = run(python, tmp_path, env={"PYTHON_GIL": "0"})
    rep = assert_blocked_shown(trace, tmp_path)
    assert all(g["acquisitions"] == 0 for g in rep["gils"])  # no GIL: the parking lot is all there is
    result, status = check_json(trace)
    assert errors(result) == [] and status == 0


def test_parking_lot_where_the_interpreter_has_one(python, tmp_path):
    trace = run(python, tmp_path)
    if version_of(python)[:2] >= (3, 13):
        # 3.13.0: its thread joins wait on a PyEvent; 3.13.15: threading.Lock is a PyMutex too
        assert blocks(trace) > 0
        if version_of(python) >= (3, 13, 15):
            assert_blocked_shown(trace, tmp_path)
    else:
        assert blocks(trace) == 0
        text = subprocess.run([GILTRACE, "report", trace], capture_output=True, text=True, timeout=60).stdout
        assert "blocked" not in text


# The main thread holds a lock forever and joins a thread that waits for it.
DEADLOCK = """\
import threading
lock = threading.Lock()
lock.acquire()
t = threading.Thread(target=lock.acquire)
t.start()
t.join()
"""


@pytest.mark.parametrize("python", FREE_THREADED)
def test_free_threaded_hang_says_who_is_blocked(python, tmp_path):
    """exit-hang on a free-threaded build: no GIL to hold or wait for, but
    both threads are blocked in the parking lot (a join, a PyMutex), and
    their roles say so, from the trace, next to their stacks."""
    script = write_script(tmp_path, DEADLOCK)
    trace = str(tmp_path / "deadlock.gtr")
    proc = subprocess.run([GILTRACE, "run", "--timeout", "2", "-o", trace, "--", python, script],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHON_GIL="0"))
    assert proc.returncode == 124, proc.stderr
    result, status = check_json(trace)
    (hang,) = [f for f in result["findings"] if f["id"] == "exit-hang"]
    roles = {r["tid"]: r for r in hang["threads"]}
    assert len(roles) == 2, hang["threads"]
    for tid, r in roles.items():
        assert "is blocked in the parking lot since +" in r["role"], r
        functions = [f["function"] for f in r["stack"]]
        assert "_PyParkingLot_Park" in functions, functions
    worker = [r for tid, r in roles.items() if tid != result["pid"]][0]
    assert "_PyMutex_LockTimed" in [f["function"] for f in worker["stack"]]
