"""What the shim does outside the GIL: dormancy, options, ring mode."""
import os
import subprocess

import pytest

from helpers import BUILD, GILTRACE, SHIM, assert_model_sound, giltrace_run, report, write_script

INTERPRETER = "/usr/bin/python3.11"


@pytest.mark.parametrize("cmd", [["sh", "-c", "echo hi"], ["/bin/true"], ["ls", "/"]],
                         ids=["sh", "true", "ls"])
def test_non_python_processes_are_untouched(tmp_path, cmd):
    """Dormant: no file, no output, even with verbose on and a bad option."""
    plain = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    env = dict(os.environ, LD_PRELOAD=SHIM,
               GILTRACE_OPTIONS=f"output={tmp_path}/%p.gtr:verbose=1:bogus=1")
    traced = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env)
    assert (traced.returncode, traced.stdout, traced.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    assert os.listdir(tmp_path) == []


def test_run_without_python_says_no_trace(tmp_path):
    proc = subprocess.run([GILTRACE, "run", "-o", str(tmp_path / "t.gtr"), "--", "sh", "-c", "exit 7"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 7
    assert "no python process ran" in proc.stderr
    assert os.listdir(tmp_path) == []


def test_run_passes_a_signal_death_on(tmp_path):
    if not os.access(INTERPRETER, os.X_OK):
        pytest.skip(f"{INTERPRETER} not installed")
    script = write_script(tmp_path, "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
    proc, trace = giltrace_run(INTERPRETER, script, tmp_path)
    assert proc.returncode == 128 + 15
    assert "killed by signal 15" in proc.stderr
    assert report(trace)["truncated"]


def test_bad_options_warn_once_each_and_the_program_runs(tmp_path):
    if not os.access(INTERPRETER, os.X_OK):
        pytest.skip(f"{INTERPRETER} not installed")
    env = dict(os.environ, LD_PRELOAD=SHIM,
               GILTRACE_OPTIONS=f"output={tmp_path}/t.gtr:mode=bogus:colour=red:ring_size=0")
    proc = subprocess.run([INTERPRETER, "-c", "print('ok')"], capture_output=True, text=True,
                          timeout=30, env=env)
    assert proc.returncode == 0 and proc.stdout == "ok\n"
    assert proc.stderr.splitlines() == [
        "giltrace: warning: GILTRACE_OPTIONS: bad mode 'bogus' (valid: full, ring); using the default",
        "giltrace: warning: GILTRACE_OPTIONS: unknown option 'colour' (valid: output, mode, ring_size, verbose, check, check_severity, check_timeout, exitcode, suppressions, log_path, giltrace, stacks, stack_depth, py_stack_depth, provoke)",
        "giltrace: warning: GILTRACE_OPTIONS: bad ring_size '0' (valid: MiB per thread, 1 to 4096); using the default",
    ]
    assert report(str(tmp_path / "t.gtr"))["process"]["mode"] == "full"


def test_unwritable_output_says_how_to_fix_it(tmp_path):
    if not os.access(INTERPRETER, os.X_OK):
        pytest.skip(f"{INTERPRETER} not installed")
    env = dict(os.environ, LD_PRELOAD=SHIM, GILTRACE_OPTIONS="output=/proc/nope/t.gtr")
    proc = subprocess.run([INTERPRETER, "-c", "print('ok')"], capture_output=True, text=True,
                          timeout=30, env=env)
    assert proc.returncode == 0 and proc.stdout == "ok\n"
    [line] = proc.stderr.splitlines()
    assert line.startswith("giltrace: error: cannot create ") and "'/proc/nope/t.gtr'" in line
    assert "set output= in GILTRACE_OPTIONS" in line


def test_existing_output_is_never_overwritten(tmp_path):
    if not os.access(INTERPRETER, os.X_OK):
        pytest.skip(f"{INTERPRETER} not installed")
    (tmp_path / "t.gtr").write_text("precious")
    env = dict(os.environ, LD_PRELOAD=SHIM, GILTRACE_OPTIONS=f"output={tmp_path}/t.gtr")
    proc = subprocess.run([INTERPRETER, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, timeout=30, env=env)
    assert (tmp_path / "t.gtr").read_text() == "precious"
    assert report(str(tmp_path / f"t.{proc.stdout.strip()}.gtr"))["process"]["pid"] == int(proc.stdout)


SLEEP0_LONG = """
import threading, time
def loop():
    for _ in range(60000):
        time.sleep(0)
ts = [threading.Thread(target=loop) for _ in range(2)]
for t in ts: t.start()
for t in ts: t.join()
"""


def test_ring_mode_keeps_the_last_mib_per_thread(tmp_path):
    if not os.access(INTERPRETER, os.X_OK):
        pytest.skip(f"{INTERPRETER} not installed")
    script = write_script(tmp_path, SLEEP0_LONG)
    proc, trace = giltrace_run(INTERPRETER, script, tmp_path, "--mode", "ring", "--ring-size", "1")
    assert proc.returncode == 0, proc.stderr
    rep = report(trace)
    assert rep["process"]["mode"] == "ring"
    assert_model_sound(rep)
    workers = [t for t in rep["threads"] if not t["main"]]
    assert len(workers) == 2
    assert all(t["events_lost"] for t in workers)
    # 60000 iterations need ~2.9 MB of events per thread; each kept 1 MiB
    assert all(10000 < t["acquisitions"] < 60000 for t in workers)
    threads = len(rep["threads"])
    assert os.path.getsize(trace) <= 4096 + 65536 + threads * (1 << 20)


def test_free_before_anything_is_resolved(tmp_path):
    """bench/mutex-pair.c activates the shim with a fake GIL; its first free()
    comes from inside dlsym() while the shim probes it (dlerror's buffer).
    The free() interposer must resolve itself without recursing."""
    bench = os.path.join(BUILD, "bench-mutex")
    env = dict(os.environ, LD_PRELOAD=SHIM, GILTRACE_OPTIONS=f"output={tmp_path}/b.gtr:check=0")
    proc = subprocess.run([bench, "free", "1000"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ns_per_free ")
    assert os.path.exists(tmp_path / "b.gtr")  # the shim did activate
