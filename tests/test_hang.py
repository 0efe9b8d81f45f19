"""`giltrace run --timeout` and `stress --timeout` on a hung process: the
snapshot of every thread's stack is taken beside the trace, the process is
ended, the trace is kept, and `check` reports exit-hang, saying who holds
the GIL, who waits for it and who waits on switch_cond for whom."""
import glob
import json
import os
import subprocess

import pytest

from helpers import GILTRACE, SCENARIOS, check_json, main_tid, of, version_of, write_script

# A daemon thread that keeps taking the GIL, and a main thread that sleeps
# forever in time.sleep: a hang before finalization.
SLEEPER = """\
import threading, time
def worker():
    while True:
        sum(range(1000))
        time.sleep(0.01)
threading.Thread(target=worker, daemon=True).start()
time.sleep(1000)
"""

# Two threads, each holding the lock the other wants; main joins them.
DEADLOCK = """\
import threading, time
a, b = threading.Lock(), threading.Lock()
def one():
    with a:
        time.sleep(0.2)
        with b:
            pass
def two():
    with b:
        time.sleep(0.2)
        with a:
            pass
ts = [threading.Thread(target=one), threading.Thread(target=two)]
[t.start() for t in ts]
[t.join() for t in ts]
"""


def has_gh96387_bug(version):
    return version[:2] == (3, 9) or (version[:2] == (3, 10) and version[2] < 8) or version[:3] == (3, 11, 0)


def pyenv_311():
    paths = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.11.*/bin/python3.11")))
    if not paths:
        pytest.skip("no pyenv 3.11 build (the stacks need its symbols)")
    return paths[-1]


def run_with_timeout(python, script, trace, timeout, extra=(), env=None, limit=60):
    cmd = [GILTRACE, "run", "--timeout", str(timeout), *extra, "-o", trace, "--", python, script]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=limit, env=env)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[1][0] != "Z"


def snapshot_threads(path):
    """{tid: [function, ...]} from a snapshot file."""
    threads, tid = {}, None
    with open(path) as f:
        lines = f.read().splitlines()
    assert lines[0] == "giltrace-snapshot\t1" and lines[-1] == "end", lines[:3]
    for line in lines:
        field = line.split("\t")
        if field[0] == "thread":
            tid = int(field[1])
            threads[tid] = []
        elif field[0] == "frame":
            threads[tid].append(field[4])
    return threads


def test_gh96387_hang_is_ended_and_explained(python, extension, tmp_path):
    """3.9's finalizing thread waits on switch_cond for a daemon thread that
    exited: run --timeout ends it, with the stacks; fixed versions exit."""
    version = version_of(python)
    trace = str(tmp_path / "hang.gtr")
    env = dict(os.environ, PYTHONPATH=extension)
    proc = run_with_timeout(python, os.path.join(SCENARIOS, "drop_request_hang.py"), trace, 10, env=env)
    result, status = check_json(trace)
    found = of(result, "exit-hang")
    snapshot = trace + ".snapshot"
    if not has_gh96387_bug(version):
        assert proc.returncode == 0, proc.stderr
        assert not os.path.exists(snapshot)
        assert found == []
        return
    assert proc.returncode == 124, proc.stderr
    assert "still runs after --timeout" in proc.stderr
    assert not alive(result["pid"])
    assert os.path.exists(snapshot)
    stacks = snapshot_threads(snapshot)
    main = main_tid(result)
    assert main in stacks and stacks[main], stacks
    assert "drop_gil" in stacks[main], stacks[main]
    assert status == 1 and len(found) == 1, result["findings"]
    f = found[0]
    assert "gh-96387" in f["what"]
    assert f["thread"]["tid"] == main
    assert f["waiting_for"]["tid"] != main
    roles = {t["tid"]: t for t in f["threads"]}
    assert "switch_cond" in roles[main]["role"] and roles[main]["stack"]
    dead = roles[f["waiting_for"]["tid"]]
    assert not dead["in_snapshot"] and "pthread_exit" in dead["role"]
    assert f["snapshot"]["path"] == snapshot and f["snapshot"]["error"] is None


def test_plain_hang_is_ended_with_a_snapshot(tmp_path):
    python = pyenv_311()
    trace = str(tmp_path / "sleep.gtr")
    proc = run_with_timeout(python, write_script(tmp_path, SLEEPER), trace, 3)
    assert proc.returncode == 124, proc.stderr
    result, status = check_json(trace)
    assert not alive(result["pid"])
    assert result["truncated"]
    (f,) = of(result, "exit-hang")
    assert status == 1
    assert "before finalization began" in f["what"] and "no thread holds the GIL" in f["what"]
    assert f["thread"]["tid"] == main_tid(result)
    roles = {t["tid"]: t for t in f["threads"]}
    assert len(roles) == 2 and all(t["in_snapshot"] for t in roles.values())
    functions = [fr["function"] for fr in roles[main_tid(result)]["stack"]]
    assert "time_sleep" in functions, functions
    # the text output shows the same, stacks included
    text = subprocess.run([GILTRACE, "check", trace], capture_output=True, text=True, timeout=60).stdout
    assert "giltrace ERROR: exit-hang" in text and "in time_sleep" in text


def test_deadlock_with_term_signal(tmp_path):
    python = pyenv_311()
    trace = str(tmp_path / "deadlock.gtr")
    proc = run_with_timeout(python, write_script(tmp_path, DEADLOCK), trace, 2, extra=("--timeout-signal", "TERM"))
    assert proc.returncode == 124, proc.stderr
    assert "with SIGTERM" in proc.stderr
    result, status = check_json(trace)
    (f,) = of(result, "exit-hang")
    roles = f["threads"]
    assert len(roles) == 3
    # every thread is blocked without the GIL: main in join, the two in acquire
    for t in roles:
        assert t["role"] == "runs without the GIL", t
        assert any(fr["function"] and "sem" in fr["function"] or fr["function"] == "do_futex_wait"
                   for fr in t["stack"]), t["stack"]


def test_no_timeout_reached_no_snapshot(tmp_path):
    python = pyenv_311()
    trace = str(tmp_path / "quick.gtr")
    proc = run_with_timeout(python, write_script(tmp_path, "print('ok')\n"), trace, 30)
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr
    assert not os.path.exists(trace + ".snapshot")
    assert of(check_json(trace)[0], "exit-hang") == []


def test_bad_options(tmp_path):
    for args in (("--timeout", "soon"), ("--timeout", "0"), ("--timeout", "1", "--timeout-signal", "NOPE")):
        proc = subprocess.run([GILTRACE, "run", *args, "--", "true"], capture_output=True, text=True, timeout=30,
                              cwd=tmp_path)
        assert proc.returncode == 2 and "giltrace: --timeout" in proc.stderr, proc.stderr


def test_stress_timeout_keeps_the_snapshot(tmp_path):
    python = pyenv_311()
    out = tmp_path / "failures"
    proc = subprocess.run([GILTRACE, "stress", "-n", "1", "-j", "1", "--timeout", "2", "--json", "-o", str(out),
                           "--", python, write_script(tmp_path, SLEEPER)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)
    (failure,) = summary["failures"]
    assert "timeout" in failure["reasons"]
    (trace,) = failure["traces"]
    assert os.path.exists(trace + ".snapshot")
    result, status = check_json(trace)
    assert status == 1 and len(of(result, "exit-hang")) == 1
