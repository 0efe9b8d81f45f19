"""Interpreters that park daemon threads at exit: 3.13.8+ and 3.14 (gh-87135)
no longer end a thread that meets a must-exit check with pthread_exit() but
park it for good in PyThread_hang_thread() (pause() in a loop), keeping its
stack and whatever locks it holds.  On them (helpers.PARKING: 3.13.15 from
`make pythons` here) the findings, the report, the HTML page and the hang
snapshot call such a thread parked: not alive, not exited, not hung.
"""
import subprocess

import pytest

import scenario_build
from helpers import (GILTRACE, PARKING, check_json, dump, errors, main_tid, of, report, run_scenario,
                     write_script)


@pytest.fixture(params=PARKING)
def parking_python(request):
    return request.param


# Daemon threads in a time.sleep() loop, and a sys.stdout whose flush
# sleeps once finalization began (flush_std_files(), after the finalizing
# flag): the process hangs at exit, and the daemons, woken meanwhile, park.
PARKED_DURING_A_HANG = """\
import sys, threading, time
def loop():
    while True:
        time.sleep(0.01)
for _ in range(2):
    threading.Thread(target=loop, daemon=True).start()
time.sleep(0.1)
class SlowOut:
    def write(self, s):
        return len(s)
    def flush(self, sleep=time.sleep, finalizing=sys.is_finalizing):
        if finalizing():
            sleep(1000)
sys.stdout = SlowOut()
"""


def test_daemon_restoring_a_freed_tstate_is_parked(parking_python, build_dir, tmp_path):
    extension = scenario_build.build_extension(parking_python, build_dir)
    proc, trace = run_scenario(parking_python, "restore_after_finalize.py", tmp_path, extension)
    assert proc.returncode == 0 and proc.stdout == "main exits\n", proc.stderr
    result, status = check_json(trace)
    assert status == 0 and errors(result) == []
    assert of(result, "exit-in-take-gil") == []
    (note,) = of(result, "parked-at-exit")
    parked = note["thread"]["tid"]
    assert parked != main_tid(result)
    assert note["call"]["function"] == "PyEval_RestoreThread"
    assert "parked there for good (pause)" in note["what"], note["what"]
    functions = [f["function"] for f in note["stack"]]
    assert "PyThread_hang_thread" in functions, functions
    # in the trace: parked, never exited
    events = [e for e in dump(trace) if e[1] == parked]
    assert [e[2] for e in events if e[2] in ("thread-park", "thread-exit")] == ["thread-park"]
    rep = report(trace)
    (thread,) = [t for t in rep["threads"] if t["tid"] == parked]
    assert thread["exit"]["how"] == "parked", thread
    text = subprocess.run([GILTRACE, "report", trace], capture_output=True, text=True, timeout=60).stdout
    assert "parked at +" in text
    html = subprocess.run([GILTRACE, "report", "--html", str(tmp_path / "r.html"), trace],
                          capture_output=True, text=True, timeout=60)
    assert html.returncode == 0, html.stderr
    assert "parked in pause() at +" in (tmp_path / "r.html").read_text()


def test_python_daemons_parked_notes_only(parking_python, tmp_path):
    """bpo-39877's shape in pure Python: daemon threads sleeping in a loop
    while the main thread exits; each one woken after finalization began
    is parked, a note; nothing is an error."""
    proc, trace = run_scenario(parking_python, "bpo39877.py", tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    result, status = check_json(trace)
    assert status == 0 and errors(result) == [], result["findings"]
    notes = of(result, "parked-at-exit")
    # never ended by pthread_exit here; a thread still on its way to the
    # must-exit check when the process exits (a few runs in a hundred) is
    # ended by the exit itself, and said so
    for f in of(result, "exit-in-take-gil"):
        assert "still there when the process exited" in f["what"], f["what"]
    parked = {t["tid"] for t in report(trace)["threads"] if (t["exit"] or {}).get("how") == "parked"}
    assert {n["thread"]["tid"] for n in notes} <= parked


def test_parked_threads_in_a_hang_snapshot(parking_python, tmp_path):
    """A hang at exit with parked daemons: they are in the snapshot (alive,
    in pause()), and exit-hang says CPython parked them."""
    trace = str(tmp_path / "hang.gtr")
    proc = subprocess.run([GILTRACE, "run", "--exit-timeout", "3", "--timeout", "60", "-o", trace, "--",
                           parking_python, write_script(tmp_path, PARKED_DURING_A_HANG)],
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == 124, proc.stderr
    result, status = check_json(trace)
    (f,) = of(result, "exit-hang")
    assert f["thread"]["tid"] == main_tid(result)
    roles = {t["tid"]: t for t in f["threads"]}
    parked = [t for t in roles.values() if "was parked by CPython (pause)" in t["role"]]
    assert len(parked) == 2, roles
    for t in parked:
        assert t["in_snapshot"], t
        functions = [fr["function"] or "" for fr in t["stack"]]
        assert "PyThread_hang_thread" in functions, functions
