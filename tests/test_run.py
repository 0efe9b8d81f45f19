"""`giltrace run`: the command sees the signals it would see without giltrace,
and every trace ends where -o says, also when run is interrupted or killed."""
import fcntl
import json
import os
import pty
import re
import select
import signal
import subprocess
import termios

import pytest

from helpers import GILTRACE, report, write_script

INTERPRETER = "/usr/bin/python3.11"

SIGNALS = ("SIGINT", "SIGQUIT", "SIGTERM", "SIGHUP")

# Prints its pid, then sleeps until a signal ends it; a KeyboardInterrupt is
# announced on stdout and raised on (python then dies of SIGINT).
SLEEPER = """\
import os, time
try:
    print(os.getpid(), flush=True)
    time.sleep(120)
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    raise
"""


def need_debian_python():
    if not os.access(INTERPRETER, os.X_OK):
        pytest.skip(f"{INTERPRETER} not installed (apt-get install python3.11)")


def defaults():
    """In the child before exec: the terminal signals at their default, as
    in an interactive shell's foreground job (whatever pytest inherited)."""
    for name in SIGNALS:
        signal.signal(getattr(signal, name), signal.SIG_DFL)


def ignoring_sigint():
    defaults()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def trace_pid(trace):
    """The pid in the trace's header, as `check --json` reads it (its exit status
    says whether the trace is complete, which a killed process's is not)."""
    proc = subprocess.run([GILTRACE, "check", "--json", str(trace)], capture_output=True, text=True, timeout=120)
    (result,) = json.loads(proc.stdout)
    return result["pid"]


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def start_sleeper(tmp_path, python=INTERPRETER):
    """giltrace run -o t.gtr -- python SLEEPER, once python sleeps: (run, python's pid)."""
    script = write_script(tmp_path, SLEEPER)
    run = subprocess.Popen([GILTRACE, "run", "-o", "t.gtr", "--", python, script],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                           preexec_fn=defaults)
    return run, int(run.stdout.readline())


def stop(run, pid):
    """Clean up after a failed test: neither process outlives it."""
    for p in (pid, run.pid):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    run.wait(timeout=30)


@pytest.mark.parametrize("start", ["default", "sigint-ignored"])
def test_signal_dispositions_are_the_untraced_ones(python, tmp_path, start):
    """run ignored SIGINT/SIGQUIT before fork and python inherited it: getsignal(SIGINT) was 1."""
    script = write_script(tmp_path, "import signal\n"
                          f"print([signal.getsignal(getattr(signal, n)) for n in {SIGNALS!r}])\n")
    preexec = defaults if start == "default" else ignoring_sigint
    plain = subprocess.run([python, script], capture_output=True, text=True, timeout=60, preexec_fn=preexec)
    traced = subprocess.run([GILTRACE, "run", "-o", str(tmp_path / "t.gtr"), "--", python, script],
                            capture_output=True, text=True, timeout=60, preexec_fn=preexec)
    assert plain.returncode == 0 and traced.returncode == 0, traced.stderr
    assert traced.stdout == plain.stdout
    if start == "default":
        assert "default_int_handler" in plain.stdout
    assert (tmp_path / "t.gtr").exists()


def test_sigint_to_run_interrupts_python(python, tmp_path):
    """kill -INT <run>: python gets its KeyboardInterrupt, run dies of SIGINT as python did."""
    script = write_script(tmp_path, SLEEPER, "plain.py")
    plain = subprocess.Popen([python, script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=defaults)
    plain.stdout.readline()
    plain.send_signal(signal.SIGINT)
    plain_out, plain_err = plain.communicate(timeout=60)

    run, pid = start_sleeper(tmp_path, python)
    try:
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=60)
    finally:
        stop(run, pid)
    assert plain_out == "KeyboardInterrupt\n" and plain.returncode == -signal.SIGINT
    assert out == plain_out
    assert plain_err.strip().splitlines()[-1] == "KeyboardInterrupt"
    assert "KeyboardInterrupt" in err
    assert run.returncode == -signal.SIGINT, err
    assert trace_pid(tmp_path / "t.gtr") == pid
    assert f"written to {tmp_path / 't.gtr'}" in err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
def test_run_killed_passes_the_signal_on_and_keeps_the_trace(tmp_path, sig):
    """A CI timeout's kill -TERM to run: python ends too, its trace is at -o, run dies of TERM."""
    need_debian_python()
    run, pid = start_sleeper(tmp_path)
    try:
        run.send_signal(sig)
        out, err = run.communicate(timeout=60)
        assert not alive(pid), "python outlived run"
    finally:
        stop(run, pid)
    assert run.returncode == -sig, err
    assert trace_pid(tmp_path / "t.gtr") == pid
    assert report(str(tmp_path / "t.gtr"))["truncated"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_sigkill_of_run_leaves_the_trace_at_its_name(tmp_path):
    """Nothing runs after SIGKILL: the shim wrote the trace at -o from the start."""
    need_debian_python()
    run, pid = start_sleeper(tmp_path)
    try:
        run.kill()
        run.wait(timeout=60)
        assert alive(pid)
        assert trace_pid(tmp_path / "t.gtr") == pid
    finally:
        stop(run, pid)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_ctrl_c_on_the_terminal_reaches_python_once(tmp_path):
    """Ctrl-C in a real terminal signals run and python together: python sees one SIGINT
    (run does not add a second), raises KeyboardInterrupt, and run ends as python did."""
    need_debian_python()
    # The wakeup fd gets one byte for every SIGINT the C handler takes.
    script = write_script(tmp_path, "import os, signal, time\n"
                          "r, w = os.pipe(); os.set_blocking(w, False); signal.set_wakeup_fd(w)\n"
                          "try:\n"
                          "    print('ready', flush=True)\n"
                          "    time.sleep(120)\n"
                          "except KeyboardInterrupt:\n"
                          "    time.sleep(1)  # time for a second copy to arrive\n"
                          "    print('sigints', len(os.read(r, 100)), flush=True)\n"
                          "    raise\n")
    master, slave = pty.openpty()

    def terminal():
        defaults()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # after setsid: our controlling terminal

    run = subprocess.Popen([GILTRACE, "run", "-o", "t.gtr", "--", INTERPRETER, script], stdin=slave,
                           stdout=slave, stderr=slave, cwd=tmp_path, start_new_session=True, preexec_fn=terminal)
    os.close(slave)
    seen = b""
    try:
        while b"ready" not in seen:
            seen += read_terminal(master)
        os.write(master, b"\x03")
        while True:
            chunk = read_terminal(master)
            if not chunk:
                break
            seen += chunk
        run.wait(timeout=60)
    finally:
        os.close(master)
        if run.poll() is None:
            run.kill()
            run.wait()
    text = seen.decode(errors="replace")
    assert "sigints 1" in text, text
    assert "KeyboardInterrupt" in text
    assert run.returncode == -signal.SIGINT, text
    assert (tmp_path / "t.gtr").exists()


def read_terminal(master):
    """Some output of the terminal, b"" once nothing holds it open any more."""
    ready, _, _ = select.select([master], [], [], 60)
    assert ready, "no output from the terminal for 60 s"
    try:
        return os.read(master, 4096)
    except OSError:  # EIO: the last process holding the terminal ended
        return b""


def test_relative_output_survives_the_child_changing_folder(tmp_path):
    """-o t.gtr is made absolute against run's folder before the command starts."""
    need_debian_python()
    (tmp_path / "sub").mkdir()
    proc = subprocess.run([GILTRACE, "run", "-o", "t.gtr", "--", "sh", "-c",
                           f"cd sub && {INTERPRETER} -c 'import os; print(os.getpid())'"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert trace_pid(tmp_path / "t.gtr") == int(proc.stdout)
    assert os.listdir(tmp_path / "sub") == []
    assert f"written to {tmp_path / 't.gtr'}" in proc.stderr


def test_pid_in_a_folder_name(tmp_path):
    """-o 'a%p/t.gtr': the trace goes to the folder named with python's pid."""
    need_debian_python()
    proc = subprocess.run([GILTRACE, "run", "-o", "a%p/t.gtr", "--", INTERPRETER, "-c",
                           "import os; print(os.getpid())"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    pid = int(proc.stdout)
    trace = tmp_path / f"a{pid}" / "t.gtr"
    assert trace_pid(trace) == pid
    assert f"written to {trace}" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"a{pid}"]


def test_more_pythons_get_pid_names_and_only_this_runs_traces_are_listed(tmp_path):
    """The command's python gets -o, a later one -o with its pid; an older trace of the
    same pattern (t.1.gtr) is neither listed nor checked."""
    need_debian_python()
    (tmp_path / "t.1.gtr").write_bytes(b"an older file")
    script = write_script(tmp_path, "import os, subprocess, sys\n"
                          "print(os.getpid(), flush=True)\n"
                          "subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], check=True)\n")
    proc = subprocess.run([GILTRACE, "run", "-o", "t.gtr", "--", INTERPRETER, script],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    first, second = (int(x) for x in proc.stdout.split())
    assert trace_pid(tmp_path / "t.gtr") == first
    assert trace_pid(tmp_path / f"t.{second}.gtr") == second
    lines = [re.sub(r"\(python [^)]*\) ", "", line) for line in proc.stderr.splitlines() if "written to" in line]
    assert lines == [f"giltrace: trace of pid {first} written to {tmp_path / 't.gtr'}",
                     f"giltrace: trace of pid {second} written to {tmp_path / f't.{second}.gtr'}"]
    assert "t.1.gtr" not in proc.stderr


def test_an_existing_output_is_kept(tmp_path):
    """run -o X with X there: refused before the command starts, X untouched."""
    need_debian_python()
    existing = tmp_path / "t.gtr"
    existing.write_bytes(b"yesterday's trace")
    proc = subprocess.run([GILTRACE, "run", "-o", "t.gtr", "--", INTERPRETER, "-c", "open('ran', 'w')"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    assert "'t.gtr' exists" in proc.stderr and "remove it" in proc.stderr
    assert existing.read_bytes() == b"yesterday's trace"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.gtr"]


def test_an_unusable_folder_is_refused_before_the_command_runs(tmp_path):
    """The shim could only say so from inside the command, and trace nothing."""
    (tmp_path / "file").write_text("")
    proc = subprocess.run([GILTRACE, "run", "-o", "file/%p/t.gtr", "--", "sh", "-c", "echo ran > ran"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    assert f"'{tmp_path / 'file'}' is not a folder" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
