"""exit-lock-held: the finalizing thread waits for a lock that a daemon thread
owned when CPython ended it (bpo-23309, gh-129536: "Fatal Python error:
_enter_buffered_busy: could not acquire lock for <_io.BufferedWriter> at
interpreter shutdown, possibly due to daemon threads").

The program dies of SIGABRT with and without giltrace, with the same fatal
error; the trace names the waiter (main), the lock and its owner (the daemon
thread), and crash-at-exit explains the abort that follows.  A thread that
finishes its writes before the exit gives no finding.  CPython 3.8-3.14 make
PyThread locks from POSIX semaphores, which the shim sees (shim/wrap-sem.c);
3.15's are PyMutex and invisible (docs/findings.md#exit-lock-held).
"""
import os
import re
import subprocess

from helpers import GILTRACE, SHIM, check_json, main_tid, of, version_of, write_script

# The daemon thread writes more than the buffer holds, so each write is a
# raw write under the BufferedWriter's lock, which sleeps with the GIL
# released.  flush_io() after the script would wait for that lock without a
# timeout, before finalization, and get it between two writes: the stream's
# flush lets only the flush of finalization (flush_std_files) through, which
# waits at most 1 s for the lock (_enter_buffered_busy).
HOLDER = """\
import io, os, sys, threading, time

class SlowRaw(io.RawIOBase):
    def writable(self):
        return True
    def write(self, b):
        time.sleep(0.3)   # the GIL released, the BufferedWriter's lock held
        return len(b)

class FlushAtShutdown(io.TextIOWrapper):
    def flush(self):
        if sys.is_finalizing():
            super().flush()

buf = io.BufferedWriter(SlowRaw(), buffer_size=16)
sys.stderr = FlushAtShutdown(buf, write_through=True)
started = threading.Event()

def writer():
    os.write(1, b"writer %d\\n" % threading.get_native_id())
    started.set()
    for _ in range(ROUNDS):
        buf.write(b"x" * 64)   # more than the buffer: a raw write under the lock

threading.Thread(target=writer, daemon=DAEMON).start()
started.wait()
time.sleep(0.05)
"""


def program(daemon):
    rounds = "iter(int, 1)" if daemon else "range(2)"
    return HOLDER.replace("ROUNDS", rounds).replace("DAEMON", str(daemon))


def environment():
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.pop("GILTRACE_OPTIONS", None)
    return env


def run(python, script, tmp_path, trace=None):
    env = environment()
    if trace:
        env["LD_PRELOAD"] = SHIM
        env["GILTRACE_OPTIONS"] = f"output={trace}:check=0"
    return subprocess.run([python, script], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)


def normalised(stderr):
    return re.sub(r"0x[0-9a-f]+", "0x?", stderr)


def writer_tid(stdout):
    return int(re.search(r"writer (\d+)", stdout).group(1))


def test_daemon_holds_stderr_lock_at_exit(python, tmp_path):
    script = write_script(tmp_path, program(daemon=True))
    plain = run(python, script, tmp_path)
    assert plain.returncode == -6, plain.stderr
    assert "could not acquire lock for <_io.BufferedWriter" in plain.stderr
    trace = str(tmp_path / "trace.gtr")
    proc = run(python, script, tmp_path, trace)
    assert proc.returncode == plain.returncode, proc.stderr
    # the fatal error is CPython's, unchanged; nothing of giltrace's
    assert normalised(proc.stderr) == normalised(plain.stderr)
    result, status = check_json(trace)
    assert status == 1
    held, = of(result, "exit-lock-held")
    assert held["severity"] == "error"
    assert held["thread"]["tid"] == main_tid(result)
    assert held["waiting_for"]["tid"] == writer_tid(proc.stdout)
    assert re.fullmatch(r"0x[0-9a-f]+", held["lock"])
    assert "the finalizing thread" in held["what"] and "gh-129536" in held["what"]
    if version_of(python) >= (3, 13, 8):  # gh-87135: the must-exit check parks the thread in pause()
        assert "which CPython parked at" in held["what"] and "holding it (pause()" in held["what"], held["what"]
    else:
        assert "CPython ended" in held["what"] and "pthread_exit at a must-exit check" in held["what"]
    assert "(its timeout)" in held["what"]
    crash, = of(result, "crash-at-exit")
    assert crash["thread"]["tid"] == main_tid(result)
    assert crash["at_ns"] > held["at_ns"]
    # the wait's stack runs through the lock acquire of the buffered stream
    functions = [f["function"] or "" for f in held["stack"]]
    assert any("acquire_lock" in f for f in functions), functions


def test_writer_done_before_exit_is_clean(python, tmp_path):
    """A non-daemon writer: the exit waits for it, it releases the lock, and
    nothing waits during finalization."""
    script = write_script(tmp_path, program(daemon=False))
    plain = run(python, script, tmp_path)
    assert plain.returncode == 0, plain.stderr
    trace = str(tmp_path / "trace.gtr")
    proc = run(python, script, tmp_path, trace)
    assert proc.returncode == 0 and proc.stderr == plain.stderr
    result, status = check_json(trace)
    assert of(result, "exit-lock-held") == []
    assert status == 0, result["findings"]
    dump = subprocess.run([GILTRACE, "dump", trace], capture_output=True, text=True, check=True).stdout
    assert " lock-wait-begin " not in dump


# A lock without a timeout: the finalizing thread's flush waits for a
# threading.Lock that the daemon thread held when CPython ended (or parked)
# it, forever: a hang at exit, which run --exit-timeout ends.
LOCK_HANG = """\
import os, sys, threading, time
lock = threading.Lock()
taken = threading.Event()
go = threading.Event()    # set once finalizing: no window for the main thread to miss
def holder():
    with lock:
        os.write(1, b"holder %d\\n" % threading.get_native_id())
        taken.set()
        go.wait()         # the GIL released, the lock held: finalization ends the thread here
threading.Thread(target=holder, daemon=True).start()
taken.wait()
class Out:
    def write(self, s):
        return len(s)
    def flush(self, acquire=lock.acquire, finalizing=sys.is_finalizing, go=go.set):
        if finalizing():
            go()
            acquire()     # no timeout: a lock nobody will release
sys.stdout = Out()
"""


def test_untimed_lock_wait_hangs_the_exit(python, tmp_path):
    """The wait never ends: exit-lock-held says whose lock, and exit-hang's
    role of the finalizing thread says what it waits for."""
    trace = str(tmp_path / "hang.gtr")
    proc = subprocess.run([GILTRACE, "run", "--exit-timeout", "1", "--timeout", "60", "-o", trace, "--", python,
                           write_script(tmp_path, LOCK_HANG)], capture_output=True, text=True, timeout=90,
                          env=environment())
    assert proc.returncode == 124, proc.stderr
    holder = int(re.search(r"holder (\d+)", proc.stdout).group(1))
    result, status = check_json(trace)
    assert status == 1
    if version_of(python) > (3, 13, 0):
        # 3.13.15's threading.Lock is a PyMutex (Modules/_threadmodule.c),
        # an atomic in user space: no owner to name, and nothing claimed
        assert of(result, "exit-lock-held") == []
        (hang,) = of(result, "exit-hang")
        assert not any("for lock 0x" in t["role"] for t in hang["threads"]), hang["threads"]
        return
    (held,) = of(result, "exit-lock-held")
    assert held["thread"]["tid"] == main_tid(result) and held["waiting_for"]["tid"] == holder
    assert "to the end of the trace, where giltrace ended the hung process" in held["what"], held["what"]
    (hang,) = of(result, "exit-hang")
    roles = {t["tid"]: t["role"] for t in hang["threads"]}
    main_role = roles[main_tid(result)]
    assert f"for lock {held['lock']}, held by thread {holder}" in main_role, main_role
