"""Fatal signals: recorded in the trace, explained by a finding, and invisible
to the program (its handlers, faulthandler, its exit status).

Each test runs the same program with and without giltrace and compares what
the program and its parent see; the trace must hold one crash event on the
thread that got the signal (shim/crash.c, docs/findings.md).
"""
import os
import re
import subprocess

from helpers import GILTRACE, SCENARIOS, SHIM, check_json, dump, main_tid, of, run_scenario, write_script

# The main thread is asleep when the crasher faults, so that faulthandler's
# dump of it is the same line in every run; ctypes.string_at is at line 4.
SEGV_IN_THREAD = """\
import ctypes, sys, threading, time
def crash():
    main_asleep.wait(); time.sleep(0.05)
    ctypes.string_at(0)
main_asleep = threading.Event()
threading.Thread(target=crash, name="crasher").start()
main_asleep.set(); time.sleep(5)
print("not reached")
"""


def environment(extension):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.pop("GILTRACE_OPTIONS", None)
    if extension:
        env["PYTHONPATH"] = extension
    return env


def untraced(python, script, tmp_path, *args, extension=None, flags=()):
    return subprocess.run([python, *flags, script, *args], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env=environment(extension))


def traced(python, script, tmp_path, *args, extension=None, flags=(), check=0):
    """The shim preloaded by environment, so that the status is the traced
    process's own (giltrace run exits with 128+N for a signal N)."""
    trace = str(tmp_path / "trace.gtr")
    env = environment(extension)
    env["LD_PRELOAD"] = SHIM
    env["GILTRACE_OPTIONS"] = f"output={trace}:check={check}:giltrace={GILTRACE}"
    proc = subprocess.run([python, *flags, script, *args], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env=env)
    return proc, trace


def crash_events(trace):
    return [(tid, dict(d.split("=", 1) for d in details if "=" in d))
            for _, tid, name, details in dump(trace) if name == "crash"]


def program_stderr(text):
    """The program's own stderr: giltrace run's lines out, addresses out."""
    lines = [line for line in text.splitlines() if not line.startswith("giltrace:")]
    return re.sub(r"0x[0-9a-f]+", "0x?", "\n".join(lines))


def test_daemon_crash_at_exit(python, extension, tmp_path):
    """A daemon thread dereferences NULL at the end of finalization: the crash
    is in the trace on that thread, crash-at-exit explains it, and the process
    dies of SIGSEGV as it does without giltrace."""
    script = os.path.join(SCENARIOS, "crash_at_exit.py")
    plain = untraced(python, script, tmp_path, extension=extension)
    assert plain.returncode == -11, plain.stderr
    proc, trace = traced(python, script, tmp_path, extension=extension, check=1)
    assert proc.returncode == plain.returncode, proc.stderr
    assert proc.stdout == plain.stdout
    # check=1 (the shim preloaded by hand): the process dies of it and says
    # nothing more than untraced (CPython's crash tests compare stderr)
    assert proc.stderr == plain.stderr
    assert proc.stdout.endswith("main exits\n")
    result, status = check_json(trace)
    assert status == 1 and result["truncated"]
    (tid, crash), = crash_events(trace)
    assert tid != main_tid(result)
    assert crash["signal"] == "SIGSEGV" and crash["code"] == "SEGV_MAPERR" and crash["addr"] == "0x0"
    assert crash["disposition"] == "default"
    (f,) = of(result, "crash-at-exit")
    assert f["severity"] == "error" and f["finalizing"]
    assert f["thread"]["tid"] == tid
    assert "got SIGSEGV (SEGV_MAPERR) at address 0x0" in f["what"]
    assert f"thread {main_tid(result)} was finalizing" in f["what"]
    assert f["stack"] and f["stack"][0]["function"] == "block_then_crash"
    assert of(result, "crash") == [] and of(result, "freed-tstate-use") == []
    text = subprocess.run([GILTRACE, "check", trace], capture_output=True, text=True, timeout=60)
    assert "giltrace ERROR: crash-at-exit" in text.stdout + text.stderr
    rep = subprocess.run([GILTRACE, "report", trace], capture_output=True, text=True, timeout=60)
    assert rep.returncode == 0 and "crash-at-exit" in rep.stdout


def test_run_reports_the_signal(python, extension, tmp_path):
    """giltrace run: 128+11 as a shell says, the finding on its report."""
    proc, trace = run_scenario(python, "crash_at_exit.py", tmp_path, extension, check=False)
    assert proc.returncode == 128 + 11, proc.stderr
    assert "killed by signal 11" in proc.stderr
    assert "giltrace ERROR: crash-at-exit" in proc.stderr


def test_program_handler_installed_after_start_is_called(python, extension, tmp_path):
    """sigaction() after the shim took SIGSEGV: the program sees its own handler
    when it asks, the handler runs after the crash is recorded, and the
    process ends as without giltrace."""
    script = os.path.join(SCENARIOS, "crash_at_exit.py")
    plain = untraced(python, script, tmp_path, "handler", extension=extension)
    assert "program handler: SIGSEGV" in plain.stderr
    proc, trace = traced(python, script, tmp_path, "handler", extension=extension)
    assert proc.returncode == plain.returncode == -11
    assert proc.stdout == plain.stdout
    assert proc.stdout.startswith("sigaction: program ")  # altstack: 3.8's faulthandler always makes one
    assert program_stderr(proc.stderr) == program_stderr(plain.stderr)
    (tid, crash), = crash_events(trace)
    assert crash["disposition"] == "handler"


def test_faulthandler_output_unchanged(python, tmp_path):
    """-X faulthandler: its report is the same as without giltrace, and the
    crash is recorded once (faulthandler raises the signal again)."""
    script = write_script(tmp_path, SEGV_IN_THREAD)
    plain = untraced(python, script, tmp_path, flags=("-X", "faulthandler"))
    assert plain.returncode == -11
    assert "Fatal Python error: Segmentation fault" in plain.stderr
    proc, trace = traced(python, script, tmp_path, flags=("-X", "faulthandler"))
    assert proc.returncode == plain.returncode
    assert program_stderr(proc.stderr) == program_stderr(plain.stderr)
    (tid, crash), = crash_events(trace)
    assert crash["signal"] == "SIGSEGV" and crash["disposition"] == "handler"
    result, _ = check_json(trace)
    (f,) = of(result, "crash")
    assert f["thread"]["tid"] == tid != main_tid(result)
    assert not f["finalizing"]


def test_abort_keeps_its_status(python, tmp_path):
    """os.abort(): SIGABRT raised by the process itself, recorded, same status."""
    script = write_script(tmp_path, "import os\nos.abort()\n")
    plain = untraced(python, script, tmp_path)
    proc, trace = traced(python, script, tmp_path)
    assert proc.returncode == plain.returncode == -6
    (tid, crash), = crash_events(trace)
    assert crash["signal"] == "SIGABRT" and crash["code"] == "SI_TKILL"
    result, _ = check_json(trace)
    assert tid == main_tid(result)
    (f,) = of(result, "crash")
    assert "raised by the process itself" in f["what"]


def test_signal_queries_show_the_programs_dispositions(python, tmp_path):
    """The shim's handler never shows: signal.getsignal, faulthandler's
    enable/disable round trip and SIG_IGN read as without giltrace."""
    script = write_script(tmp_path, """\
import faulthandler, signal
print(signal.getsignal(signal.SIGSEGV), signal.getsignal(signal.SIGABRT))
faulthandler.enable()
faulthandler.disable()
print(signal.getsignal(signal.SIGSEGV))
signal.signal(signal.SIGABRT, signal.SIG_IGN)
print(signal.getsignal(signal.SIGABRT))
signal.signal(signal.SIGABRT, signal.SIG_DFL)
print(signal.getsignal(signal.SIGABRT))
""")
    plain = untraced(python, script, tmp_path)
    proc, trace = traced(python, script, tmp_path)
    assert plain.returncode == proc.returncode == 0, proc.stderr
    assert proc.stdout == plain.stdout
    assert crash_events(trace) == []


def test_clean_program_has_no_crash_event(python, tmp_path):
    script = write_script(tmp_path, "import threading\nt = threading.Thread(target=sum, args=(range(1000),))\n"
                                    "t.start(); t.join()\n")
    proc, trace = traced(python, script, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert crash_events(trace) == []
    result, status = check_json(trace)
    assert status == 0 and of(result, "crash") == [] and of(result, "crash-at-exit") == []


def test_crash_in_python_shows_the_thread_and_its_line(python, tmp_path):
    """As faulthandler would: the crash's Python stack, read in the handler
    (fault-free reads), names the thread and the line that crashed."""
    script = write_script(tmp_path, SEGV_IN_THREAD)
    plain = untraced(python, script, tmp_path)
    proc, trace = traced(python, script, tmp_path)
    assert proc.returncode == plain.returncode == -11, proc.stderr
    result, _ = check_json(trace)
    (f,) = of(result, "crash")
    assert f["thread"]["name"] == "crasher"
    frames = f["py_stack"]["frames"]
    # ctypes.string_at is Python code on every version: the crash's line is
    # in it, and crash() at line 4 called it
    crash = [fr for fr in frames if fr["file"] == script]
    assert crash and crash[0]["function"] == "crash" and crash[0]["line"] == 4, frames
    assert frames[-1]["function"].endswith("_bootstrap"), frames
