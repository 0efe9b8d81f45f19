"""`giltrace run --timeout` and `stress --timeout` on a hung process, and
their --exit-timeout on a process that does not exit after finalization
began: the snapshot of every thread's stack is taken beside the trace, the
process is ended, the trace is kept, and `check` reports exit-hang, saying
who holds the GIL, who waits for it and who waits on switch_cond for
whom."""
import glob
import json
import os
import subprocess

import pytest

import scenario_build
from helpers import GILTRACE, SCENARIOS, alive, check_json, dump, main_tid, of, report, version_of, write_script

# A daemon thread that keeps taking the GIL, and a main thread that sleeps
# forever in time.sleep: a hang before finalization.
SLEEPER = """\
import threading, time
def worker():
    while True:
        time.sleep(0.01)   # the GIL held for microseconds: a snapshot finds it free
threading.Thread(target=worker, daemon=True).start()
time.sleep(1000)
"""

# Finalization itself hangs: a module global's __del__ sleeps when the
# module is torn down, after the runtime's finalizing flag is set.
HANGS_IN_FINALIZATION = """\
import time
class Slow:
    def __del__(self, sleep=time.sleep):  # bound now: module globals may be None by then
        sleep(1000)
slow = Slow()
"""

# A parent that runs a child which hangs in finalization, and reports how
# the child ended.
PARENT_OF_HUNG_CHILD = """\
import subprocess, sys
child = subprocess.run([sys.executable, sys.argv[1]])
print("child ended", child.returncode)
"""

# Both threads asleep for good: the trace's last event is a GIL release.
ASLEEP = """\
import threading, time
threading.Thread(target=time.sleep, args=(1000,), daemon=True).start()
time.sleep(1000)
"""

# A process that makes itself non-dumpable: attaching to it needs
# CAP_SYS_PTRACE, which the test takes away from giltrace.
NOT_DUMPABLE = """\
import ctypes
ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)   # PR_SET_DUMPABLE, 0
""" + ASLEEP

# Two threads, each holding the lock the other wants; main joins them.
DEADLOCK = """\
import threading, time
a, b = threading.Lock(), threading.Lock()
both_hold_one = threading.Barrier(2)
def one():
    with a:
        both_hold_one.wait()
        with b:
            pass
def two():
    with b:
        both_hold_one.wait()
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
    exited: run --exit-timeout ends it, with the stacks, long before
    --timeout would; fixed versions exit."""
    version = version_of(python)
    trace = str(tmp_path / "hang.gtr")
    env = dict(os.environ, PYTHONPATH=extension)
    proc = run_with_timeout(python, os.path.join(SCENARIOS, "drop_request_hang.py"), trace, 60, env=env,
                            extra=("--exit-timeout", "3"))
    result, status = check_json(trace)
    found = of(result, "exit-hang")
    snapshot = trace + ".snapshot"
    if not has_gh96387_bug(version):
        assert proc.returncode == 0, proc.stderr
        assert not os.path.exists(snapshot)
        assert found == []
        return
    assert proc.returncode == 124, proc.stderr
    assert "has not exited after --exit-timeout 3" in proc.stderr
    assert not alive(result["pid"])
    assert os.path.exists(snapshot)
    stacks = snapshot_threads(snapshot)
    main = main_tid(result)
    assert main in stacks and stacks[main], stacks
    assert "drop_gil" in stacks[main], stacks[main]
    assert status == 1 and len(found) == 1, result["findings"]
    f = found[0]
    assert "gh-96387" in f["what"] and "after finalization began (--exit-timeout)" in f["what"]
    assert f["thread"]["tid"] == main
    assert f["waiting_for"]["tid"] != main
    roles = {t["tid"]: t for t in f["threads"]}
    assert "switch_cond" in roles[main]["role"] and roles[main]["stack"]
    dead = roles[f["waiting_for"]["tid"]]
    assert not dead["in_snapshot"] and "pthread_exit" in dead["role"]
    assert f["snapshot"]["path"] == snapshot and f["snapshot"]["error"] is None


def snapshot_reason(path):
    with open(path) as f:
        fields = dict(line.split("\t", 1) for line in f.read().splitlines() if "\t" in line)
    return fields["reason"].split("\t")[0]


def test_bpo36469_gil_kept_at_exit(python, extension, tmp_path):
    """A native thread takes the GIL after Py_FinalizeEx began and keeps it:
    the finalizing thread waits for it forever.  Where the shim sees the
    Py_FinalizeEx call, --exit-timeout ends it and exit-hang names
    bpo-36469; where it does not (Debian's static python3.11 calls it
    inside itself, and the finalizing flag is never set), --timeout ends
    it and the hang is before finalization as far as the trace knows."""
    trace = str(tmp_path / "kept.gtr")
    env = dict(os.environ, PYTHONPATH=extension)
    proc = run_with_timeout(python, os.path.join(SCENARIOS, "gil_kept_at_exit.py"), trace, 15, env=env,
                            extra=("--exit-timeout", "2"))
    assert proc.returncode == 124, proc.stderr
    result, status = check_json(trace)
    (f,) = of(result, "exit-hang")
    assert status == 1
    main = main_tid(result)
    sees_finalize = any(e[2] == "capi-call" and "Py_FinalizeEx" in " ".join(e[3]) for e in dump(trace))
    if not sees_finalize:
        assert "still runs after --timeout" in proc.stderr
        assert "before finalization began" in f["what"], f["what"]
        return
    assert "has not exited after --exit-timeout 2" in proc.stderr
    assert "bpo-36469" in f["what"], f["what"]
    assert f["thread"]["tid"] == main
    holder = f["waiting_for"]["tid"]
    assert holder != main
    roles = {t["tid"]: t for t in f["threads"]}
    assert "holds the GIL" in roles[holder]["role"], roles[holder]
    assert "native_waiter" in [fr["function"] for fr in roles[holder]["stack"]], roles[holder]["stack"]
    assert any((fr["function"] or "").startswith("take_gil") for fr in roles[main]["stack"]), roles[main]["stack"]


def test_exit_timeout_ends_a_hang_in_finalization(python, tmp_path):
    """A process that hangs once finalization began is ended --exit-timeout
    after, with the snapshot showing where it hangs."""
    trace = str(tmp_path / "fin.gtr")
    proc = run_with_timeout(python, write_script(tmp_path, HANGS_IN_FINALIZATION), trace, 60,
                            extra=("--exit-timeout", "1"))
    assert proc.returncode == 124, proc.stderr
    assert "has not exited after --exit-timeout 1" in proc.stderr
    assert "still runs after --timeout" not in proc.stderr
    result, status = check_json(trace)
    assert not alive(result["pid"])
    assert snapshot_reason(trace + ".snapshot") == "finalization"
    (f,) = of(result, "exit-hang")
    assert status == 1
    assert f["thread"]["tid"] == main_tid(result)
    assert "finalizes the interpreter" in f["what"], f["what"]
    assert "had not exited 1.000 s after finalization began (--exit-timeout)" in f["what"], f["what"]
    stack = snapshot_threads(trace + ".snapshot")[main_tid(result)]
    if any(stack):  # symbols: every build here but a stripped one without debug info
        assert "Py_FinalizeEx" in stack, stack


def test_exit_timeout_leaves_slow_programs_alone(tmp_path):
    """Time spent before finalization, or in an embedder's next interpreter
    after an earlier finalization, is not a hang at exit."""
    python = pyenv_311()
    slow = write_script(tmp_path, SLEEPER.replace("1000", "2.5"))
    trace = str(tmp_path / "slow.gtr")
    proc = run_with_timeout(python, slow, trace, 60, extra=("--exit-timeout", "1"))
    assert proc.returncode == 0, proc.stderr
    assert not os.path.exists(trace + ".snapshot")
    assert of(check_json(trace)[0], "exit-hang") == []


def test_exit_timeout_skips_an_embedders_next_interpreter(python, build_dir, tmp_path):
    program = scenario_build.build_embed(python, build_dir)
    trace = str(tmp_path / "embed.gtr")
    proc = subprocess.run([GILTRACE, "run", "--exit-timeout", "1", "-o", trace, "--", program, "slow"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "done\n", proc.stderr
    assert not os.path.exists(trace + ".snapshot")
    result, _ = check_json(trace)
    assert of(result, "exit-hang") == []
    assert len(report(trace)["finalizations"]) == 2


def test_exit_timeout_ends_the_hung_child_only(tmp_path):
    """A child hung at exit is ended; its parent (a test runner, say) goes
    on and run exits as the parent does."""
    python = pyenv_311()
    parent = write_script(tmp_path, PARENT_OF_HUNG_CHILD, "parent.py")
    child = write_script(tmp_path, HANGS_IN_FINALIZATION, "child.py")
    trace = str(tmp_path / "t.gtr")
    proc = subprocess.run([GILTRACE, "run", "--exit-timeout", "1", "--timeout", "60", "-o", trace, "--", python,
                           parent, child], capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "child ended -9\n"
    (child_trace,) = glob.glob(str(tmp_path / "t.*.gtr"))
    assert os.path.exists(child_trace + ".snapshot") and not os.path.exists(trace + ".snapshot")
    assert len(of(check_json(child_trace)[0], "exit-hang")) == 1
    assert of(check_json(trace)[0], "exit-hang") == []


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


def test_hang_after_the_last_release_holds_nothing(python, tmp_path):
    """A GIL release that is the trace's last event ends the hold: nobody
    holds the GIL in the hang (it was taken for held once)."""
    trace = str(tmp_path / "asleep.gtr")
    proc = run_with_timeout(python, write_script(tmp_path, ASLEEP), trace, 3)
    assert proc.returncode == 124, proc.stderr
    result, status = check_json(trace)
    (f,) = of(result, "exit-hang")
    assert "no thread holds the GIL" in f["what"], f["what"]
    assert not any("holds the GIL" in t["role"] for t in f["threads"]), f["threads"]


def test_snapshot_without_ptrace_permission(tmp_path):
    """Stacks that cannot be read are said to be missing, with the reason
    and the fix; the process is ended anyway and the finding made."""
    python = pyenv_311()
    trace = str(tmp_path / "nodump.gtr")
    cmd = [GILTRACE, "run", "--timeout", "3", "-o", trace, "--", python, write_script(tmp_path, NOT_DUMPABLE)]
    if os.geteuid() == 0:  # root may attach to anything: drop the capability that lets it
        cmd = ["setpriv", "--bounding-set", "-sys_ptrace", "--inh-caps", "-sys_ptrace", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 124, proc.stderr
    assert "cannot read the stacks" in proc.stderr and "CAP_SYS_PTRACE" in proc.stderr, proc.stderr
    result, status = check_json(trace)
    assert not alive(result["pid"])
    (f,) = of(result, "exit-hang")
    assert status == 1
    assert "Operation not permitted" in f["snapshot"]["error"], f["snapshot"]
    threads = snapshot_threads(trace + ".snapshot")
    assert len(threads) == 2 and not any(threads.values()), threads


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
    for args in (("--timeout", "soon"), ("--timeout", "0"), ("--timeout", "1", "--timeout-signal", "NOPE"),
                 ("--exit-timeout", "soon"), ("--exit-timeout", "0")):
        for command in ("run", "stress"):
            runs = ("-n", "1") if command == "stress" else ()
            proc = subprocess.run([GILTRACE, command, *runs, *args, "--", "true"], capture_output=True, text=True,
                                  timeout=30, cwd=tmp_path)
            if command == "stress" and "--timeout-signal" in args:
                continue  # a run option only
            assert proc.returncode == 2 and f"giltrace: {args[0]}" in proc.stderr, (command, proc.stderr)


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


def test_stress_exit_timeout(tmp_path):
    python = pyenv_311()
    out = tmp_path / "failures"
    proc = subprocess.run([GILTRACE, "stress", "-n", "2", "-j", "2", "--exit-timeout", "1", "--timeout", "60",
                           "--json", "-o", str(out), "--", python, write_script(tmp_path, HANGS_IN_FINALIZATION)],
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)
    assert len(summary["failures"]) == 2
    for failure in summary["failures"]:
        assert "exit timeout" in failure["reasons"], failure
        (trace,) = failure["traces"]
        assert snapshot_reason(trace + ".snapshot") == "finalization"
        result, status = check_json(trace)
        assert status == 1 and len(of(result, "exit-hang")) == 1
