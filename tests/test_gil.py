"""The GIL as giltrace sees it, on every interpreter present; and a
free-threaded build, which has none to see."""
import os
import subprocess

import pytest

from helpers import (FREE_THREADED, GILTRACE, WAIT_THREADS_GONE, assert_holds_never_overlap, assert_model_sound, assert_recorded, check_json,
                     dump, errors, giltrace_run, report, version_of, write_script)

CPU_THREADS = """
import sys, threading, time
sys.setswitchinterval(0.0005)
# Spin until every worker has been switched in 5 times, not for a number of
# iterations: on a loaded machine a worker can run a fixed loop in one or
# two holds.  A worker that sees another's mark in `last` got the GIL back.
switched_in = [0] * 4
last = [-1]
deadline = time.monotonic() + 60
def work(i):
    while min(switched_in) < 5 and time.monotonic() < deadline:
        if last[0] != i:
            last[0] = i
            switched_in[i] += 1
ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in ts: t.start()
for t in ts: t.join()
""" + WAIT_THREADS_GONE + """
print("done")
"""


def workers(rep):
    return [t for t in rep["threads"] if not t["main"]]


def test_cpu_bound_threads_share_the_gil(python, tmp_path):
    script = write_script(tmp_path, CPU_THREADS)
    proc, trace = giltrace_run(python, script, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "done\n"
    rep = report(trace)
    assert not rep["truncated"]
    assert_model_sound(rep)
    assert_holds_never_overlap(dump(trace))
    ws = workers(rep)
    assert len(ws) == 4
    for t in ws:
        assert t["acquisitions"] >= 5, t
        # 3.8's t_bootstrap ends with PyThread_exit_thread(): pthread_exit
        assert t["exit"]["how"] in ("return", "pthread_exit") and not t["exit"]["held_gil"]
    # handoffs between all of them: every worker gave the GIL to another
    # thread and received it from another thread
    pairs = rep["handoffs"]["pairs"]
    for t in ws:
        assert any(p["from_tid"] == t["tid"] for p in pairs), t["tid"]
        assert any(p["to_tid"] == t["tid"] for p in pairs), t["tid"]
    assert rep["handoffs"]["count"] == sum(p["count"] for p in pairs) > 0
    lat = rep["handoffs"]["latency_ns"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    # CPU-bound: the GIL is busy most of the run
    gil = rep["gils"][0]
    assert gil["main"] and gil["held_ns"] > 0.5 * rep["wall_ns"]


SLEEP0 = """
import sys, threading, time
N = int(sys.argv[1])
def loop():
    for _ in range(N):
        time.sleep(0)
ts = [threading.Thread(target=loop) for _ in range(4)]
for t in ts: t.start()
for t in ts: t.join()
"""


def test_sleep0_loop_acquires_once_per_iteration(python, tmp_path):
    """time.sleep(0) releases and re-takes the GIL once per call; the
    switch interval adds a few forced switches.  Bound: N <= acquisitions
    <= N + N/10 + 50 for each thread."""
    n = 2000
    script = write_script(tmp_path, SLEEP0)
    proc, trace = giltrace_run(python, script, tmp_path, extra=[str(n)])
    assert proc.returncode == 0, proc.stderr
    rep = report(trace)
    assert_model_sound(rep)
    assert len(workers(rep)) == 4
    for t in workers(rep):
        assert n <= t["acquisitions"] <= n + n // 10 + 50, t


DAEMONS = """
import sys, threading, time
ready = threading.Barrier(4)
def spin():
    ready.wait()
    while True:
        time.sleep(0.0005)
        sum(range(200))
for _ in range(3):
    threading.Thread(target=spin, daemon=True).start()
ready.wait()
time.sleep(0.05)
print("main exits")
"""


def test_daemon_threads_alive_at_finalization(python, tmp_path):
    script = write_script(tmp_path, DAEMONS)
    proc, trace = giltrace_run(python, script, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "main exits\n"
    rep = report(trace)
    assert_model_sound(rep)
    fin = rep["finalization"]
    assert fin["start_ns"] is not None
    main = next(t for t in rep["threads"] if t["main"])
    assert fin["finalizing_tid"] == main["tid"]
    daemons = workers(rep)
    assert len(daemons) == 3
    assert set(fin["alive_at_start"]) == {main["tid"]} | {t["tid"] for t in daemons}
    for t in daemons:
        assert t["first_ns"] < fin["start_ns"]


OUTPUT = """
import sys, threading
def hello(i):
    print("thread", i, flush=True)
for i in range(3):
    t = threading.Thread(target=hello, args=(i,)); t.start(); t.join()
print("stderr line", file=sys.stderr)
sys.exit(3)
"""


def test_output_and_exit_status_unchanged(python, tmp_path):
    import subprocess
    from helpers import SHIM
    script = write_script(tmp_path, OUTPUT)
    plain = subprocess.run([python, script], capture_output=True, text=True, timeout=60)
    env = dict(os.environ, LD_PRELOAD=SHIM, GILTRACE_OPTIONS=f"output={tmp_path}/%p.gtr")
    traced = subprocess.run([python, script], capture_output=True, text=True, timeout=60, env=env)
    assert plain.returncode == traced.returncode == 3
    assert plain.stdout == traced.stdout
    assert plain.stderr == traced.stderr
    [trace] = [f for f in os.listdir(tmp_path) if f.endswith(".gtr")]
    # with the recorder at work: the three threads and the exit are in the trace
    assert_recorded(report(str(tmp_path / trace)), workers=3)
    # and giltrace run passes the status through
    proc, trace = giltrace_run(python, script, tmp_path)
    assert proc.returncode == 3 and proc.stdout == plain.stdout


FOREVER = """
import threading, time, sys
def spin():
    while True:
        time.sleep(0)
for _ in range(2):
    threading.Thread(target=spin, daemon=True).start()
time.sleep(0.2)
print("ready", flush=True)
time.sleep(60)
"""


def test_sigkill_leaves_a_readable_truncated_trace(python, tmp_path):
    import signal
    import subprocess
    from helpers import SHIM
    script = write_script(tmp_path, FOREVER)
    env = dict(os.environ, LD_PRELOAD=SHIM, GILTRACE_OPTIONS=f"output={tmp_path}/killed.gtr")
    proc = subprocess.Popen([python, script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline() == "ready\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    rep = report(str(tmp_path / "killed.gtr"))
    assert rep["truncated"] and rep["truncated_at_ns"] > 0
    assert rep["events"] > 100
    assert_model_sound(rep)
    assert len(workers(rep)) == 2 and all(t["acquisitions"] > 10 for t in workers(rep))


FORK = """
import os, threading
def work():
    sum(range(10000))
pid = os.fork()
if pid == 0:
    ts = [threading.Thread(target=work) for _ in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()
    os._exit(0)
os.waitpid(pid, 0)
print("parent", os.getpid(), "child", pid)
"""


def test_fork_without_exec_gives_each_process_a_trace(python, tmp_path):
    script = write_script(tmp_path, FORK)
    proc, trace = giltrace_run(python, script, tmp_path)
    assert proc.returncode == 0, proc.stderr
    parent_pid, child_pid = int(proc.stdout.split()[1]), int(proc.stdout.split()[3])
    parent = report(trace)
    child = report(str(tmp_path / f"trace.{child_pid}.gtr"))
    assert parent["process"]["pid"] == parent_pid and not parent["process"]["fork_child"]
    assert child["process"]["pid"] == child_pid and child["process"]["fork_child"]
    assert child["process"]["ppid"] == parent_pid
    for rep in (parent, child):
        assert not rep["truncated"]
        assert_model_sound(rep)
    assert len(workers(child)) == 2 and all(t["acquisitions"] >= 1 for t in workers(child))


MULTIPROCESSING = """
import multiprocessing
def square(x):
    return x * x
if __name__ == "__main__":
    with multiprocessing.get_context("fork").Pool(2) as pool:
        print(sum(pool.map(square, range(100))))
        # each worker ends on its own: a terminate() at the with's end could
        # kill one that never ran, before the first event that opens its trace
        pool.close()
        pool.join()
"""


def test_multiprocessing_children_each_get_a_trace(python, tmp_path):
    script = write_script(tmp_path, MULTIPROCESSING)
    proc, trace = giltrace_run(python, script, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "328350\n"
    traces = sorted(f for f in os.listdir(tmp_path) if f.endswith(".gtr"))
    assert "trace.gtr" in traces and len(traces) == 3, traces
    pids = set()
    for name in traces:
        rep = report(str(tmp_path / name))
        assert_model_sound(rep)
        pids.add(rep["process"]["pid"])
    assert len(pids) == 3


FREE_THREADED_WORK = """
import sys, threading
def work():
    sum(range(300000))
ts = [threading.Thread(target=work) for _ in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print("gil enabled:", sys._is_gil_enabled())
sys.exit(3)
"""


@pytest.mark.parametrize("python", FREE_THREADED)
def test_free_threaded_build_runs_unchanged(python, tmp_path):
    """A free-threaded build with its GIL disabled (no GIL handoffs, so not
    in INTERPRETERS): the program behaves as untraced, the trace is usable
    and says which build it is, no error finding."""
    script = write_script(tmp_path, FREE_THREADED_WORK)
    plain = subprocess.run([python, script], capture_output=True, text=True, timeout=60)
    assert plain.returncode == 3 and plain.stdout == "gil enabled: False\n", plain.stderr
    proc, trace = giltrace_run(python, script, tmp_path)
    assert proc.returncode == 3 and proc.stdout == plain.stdout
    rep = report(trace)
    assert rep["interpreter"]["free_threaded"]
    assert rep["model_errors"] == []
    result, _ = check_json(trace)
    assert errors(result) == []


@pytest.mark.parametrize("python", FREE_THREADED)
def test_free_threaded_report_says_whether_the_gil_was_on(python, tmp_path):
    """Disabled, enabled for good (PYTHON_GIL=1): the report says which,
    from the GIL's own `enabled` count, not "no acquisitions"."""
    script = write_script(tmp_path, FREE_THREADED_WORK)
    texts = {}
    for setting in ("0", "1"):
        out = tmp_path / f"gil{setting}.gtr"
        proc = subprocess.run([GILTRACE, "run", "-o", str(out), "--", python, script], capture_output=True,
                              text=True, timeout=60, env=dict(os.environ, PYTHON_GIL=setting))
        assert proc.returncode == 3 and proc.stdout == f"gil enabled: {setting == '1'}\n", proc.stderr
        rep = report(str(out))
        (gil,) = rep["gils"]
        texts[setting] = subprocess.run([GILTRACE, "report", str(out)], capture_output=True, text=True,
                                        timeout=60).stdout
        if setting == "0":
            assert gil["acquisitions"] == 0
            assert gil["enabled"]["for_good_at_ns"] is None and gil["enabled"]["times_transient"] == 0
            assert "free-threaded build: the GIL stayed disabled" in texts[setting]
        else:
            assert gil["acquisitions"] > 0 and rep["handoffs"]["count"] > 0
            assert gil["enabled"]["for_good_at_ns"] is not None
            assert "the GIL was enabled for good at +" in texts[setting]
            assert rep["interpreter"]["gil_layout"] == "debug-offsets"  # the locked field read right
        assert_model_sound(rep)


@pytest.mark.parametrize("python", FREE_THREADED)
def test_free_threaded_report_says_which_module_enabled_the_gil(python, extension, tmp_path):
    """Importing gtscenario, a single-phase module without Py_mod_gil, enables
    the GIL for good: the report names the module and the importing thread,
    and the program's RuntimeWarning is the same as untraced."""
    script = write_script(tmp_path, "import sys, gtscenario\nprint('gil enabled:', sys._is_gil_enabled())\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    env["PYTHONPATH"] = extension
    out = str(tmp_path / "import.gtr")
    proc = subprocess.run([GILTRACE, "run", "-o", out, "--", python, script], capture_output=True, text=True,
                          timeout=60, env=env)
    untraced = subprocess.run([python, script], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0 and proc.stdout == untraced.stdout == "gil enabled: True\n", proc.stderr
    warning = "RuntimeWarning: The global interpreter lock (GIL) has been enabled to load module 'gtscenario'"
    assert warning in untraced.stderr
    assert proc.stderr.startswith(untraced.stderr), (proc.stderr, untraced.stderr)
    rep = report(out)
    (gil,) = rep["gils"]
    module = gil["enabled"]["for_good_by_module"]
    assert os.path.basename(module).startswith("gtscenario.") and os.path.dirname(module) == extension
    assert gil["enabled"]["for_good_by_tid"] == rep["process"]["pid"]
    assert f"importing {module}, an extension module that does not declare Py_mod_gil_not_used" in \
        gil["enabled"]["text"]
    # the imports before it (built-in modules) enabled it only for a while
    assert gil["enabled"]["times_transient"] >= 1
    assert_model_sound(rep)

    # PYTHON_GIL=1: enabled from the start, by no import
    out = str(tmp_path / "config.gtr")
    proc = subprocess.run([GILTRACE, "run", "-o", out, "--", python, "-c", "pass"], capture_output=True,
                          text=True, timeout=60, env=dict(env, PYTHON_GIL="1"))
    assert proc.returncode == 0, proc.stderr
    (gil,) = report(out)["gils"]
    assert gil["enabled"]["for_good_by_module"] is None and gil["enabled"]["for_good_by_tid"] is None
    assert "with no import enabling it first: PYTHON_GIL=1 or -X gil=1" in gil["enabled"]["text"]


def test_gil_layout_from_the_interpreter_itself(python, tmp_path):
    """3.13 says where its GIL's fields are (_Py_DebugOffsets): the shim
    uses that, agrees with its own table, and the handoffs add up; older
    versions use the table."""
    script = write_script(tmp_path, "import threading\nts = [threading.Thread(target=sum, args=(range(200000),))"
                                    " for _ in range(3)]\n[t.start() for t in ts]; [t.join() for t in ts]\n")
    proc, trace = giltrace_run(python, script, tmp_path)
    assert proc.returncode == 0, proc.stderr
    rep = report(trace)
    expected = "debug-offsets" if version_of(python)[:2] == (3, 13) else "table"
    assert rep["interpreter"]["gil_layout"] == expected
    assert not any("_Py_DebugOffsets" in note for note in rep["notes"]), rep["notes"]
    assert_recorded(rep, workers=3)
    assert_model_sound(rep)
