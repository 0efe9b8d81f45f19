"""`giltrace stress`: many runs under the shim, the failed ones kept and grouped.

The flaky programs here are deterministic: they count their runs in a file
(under a lock) and fail on chosen counts, so that the expected number of
failures is exact.  Debian's python3.11 only: stress starts the command as
`run` does, which the other files test on every interpreter.
"""
import json
import os
import pty
import re
import select
import signal
import subprocess
import time

import pytest

import scenario_build
from helpers import GILTRACE, SCENARIOS, alive, write_script

INTERPRETER = "/usr/bin/python3.11"

# Exits 3 on the 4th run of every 10, dies of SIGKILL on the 8th, says so on
# stdout and stderr first; the other runs start a thread and join it.
FLAKY = """\
import fcntl, os, signal, sys, threading
with open(sys.argv[1], "a+") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    f.seek(0)
    n = len(f.read()) + 1
    f.write("x")
t = threading.Thread(target=sum, args=(range(10000),))
t.start()
t.join()
if n in (int(a) for a in sys.argv[2:]) or n % 10 == 4:
    print(f"run {n} fails", flush=True)
    print("stderr too", file=sys.stderr, flush=True)
    sys.exit(3)
if n % 10 == 8:
    os.kill(os.getpid(), signal.SIGKILL)
"""

# A good run: a thread joined; its stdin is /dev/null and it has no
# descriptor but 0, 1 and 2 (giltrace's own are not inherited).
CLEAN = """\
import os, sys, threading
t = threading.Thread(target=sum, args=(range(10000),))
t.start()
t.join()
fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
if fds[:3] != [0, 1, 2] or len(fds) > 4 or os.readlink("/proc/self/fd/0") != "/dev/null":
    print("descriptors:", fds, os.readlink("/proc/self/fd/0"))
    sys.exit(5)
"""

# Hangs, with a grandchild in its process group, and ignores SIGTERM, so that
# only the SIGKILL after the grace period ends it; the grandchild's pid in argv[1].
HANG = """\
import signal, subprocess, sys, time
child = subprocess.Popen(["sleep", "60"])
with open(sys.argv[1], "a") as f:
    f.write(f"{child.pid}\\n")
signal.signal(signal.SIGTERM, signal.SIG_IGN)
time.sleep(60)
"""


@pytest.fixture(autouse=True)
def need_python():
    if not os.access(INTERPRETER, os.X_OK):
        pytest.skip(f"{INTERPRETER} not installed (apt-get install python3.11)")


def stress(tmp_path, *args, timeout=60, env=None):
    return subprocess.run([GILTRACE, "stress", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=tmp_path, env=env)


def stress_json(tmp_path, *args, status=1, **kw):
    proc = stress(tmp_path, "--json", *args, **kw)
    assert proc.returncode == status, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_clean_program_keeps_nothing(tmp_path):
    script = write_script(tmp_path, CLEAN)
    out = tmp_path / "out"
    proc = stress(tmp_path, "-n", "50", "-j", "2", "-o", str(out), "--", INTERPRETER, script)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("giltrace stress: 0/50 runs failed in "), proc.stdout
    assert proc.stderr == ""  # no progress line when stderr is not a terminal
    assert not out.exists()  # made by stress, nothing kept in it: removed


def test_default_folder_and_existing_empty_folder(tmp_path):
    script = write_script(tmp_path, CLEAN)
    result = stress_json(tmp_path, "-n", "2", "--", INTERPRETER, script, status=0)
    assert result["runs"] == 2 and result["failed"] == 0 and result["output_dir"] is None
    assert [p for p in os.listdir(tmp_path) if p.startswith("stress-")] == []
    (tmp_path / "given").mkdir()
    result = stress_json(tmp_path, "-n", "2", "-o", "given", "--keep", "all", "--", INTERPRETER, script, status=0)
    kept = sorted(os.listdir(tmp_path / "given"))
    assert len([k for k in kept if re.fullmatch(r"run-[12]\.\d+\.gtr", k)]) == 2, kept
    assert result["output_dir"] == "given"


def test_flaky_failures_are_grouped_and_kept(tmp_path):
    script = write_script(tmp_path, FLAKY)
    out = tmp_path / "failures"
    proc = stress(tmp_path, "-n", "40", "-j", "2", "-o", "failures/", "--", INTERPRETER, script,
                  str(tmp_path / "count"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert re.match(r"giltrace stress: 8/40 runs failed in .*: 4 exit status 3, 4 signal SIGKILL$", lines[0]), lines
    assert "  4  exit status 3" in lines and "  4  signal SIGKILL" in lines
    assert lines[-1] == "giltrace stress: kept in failures"
    kept = sorted(os.listdir(out))
    traces = [k for k in kept if k.endswith(".gtr")]
    logs = [k for k in kept if k.endswith(".log")]
    # one trace per failed run, and nothing of the 32 good ones
    assert len(traces) == 8 and all(re.fullmatch(r"run-\d+\.\d+\.gtr", t) for t in traces), kept
    assert len(logs) == 4, kept  # the SIGKILLed runs print nothing: no empty log kept
    for log in logs:
        assert re.fullmatch(r"run \d+ fails\nstderr too\n", (out / log).read_text())
        run = log.split(".")[0]
        assert any(t.startswith(run + ".") for t in traces)
    # the example of each group is a kept file
    for line in lines:
        if line.strip().startswith("e.g. run"):
            for path in line.split(":", 1)[1].split():
                assert (tmp_path / path).exists(), line


def test_json_matches_the_runs(tmp_path):
    script = write_script(tmp_path, FLAKY)
    result = stress_json(tmp_path, "-n", "20", "-j", "2", "-o", "out", "--", INTERPRETER, script,
                         str(tmp_path / "count"))
    assert result["runs"] == 20 and result["failed"] == 4
    assert result["output_dir"] == "out" and not result["interrupted"]
    groups = {g["signature"]: g for g in result["groups"]}
    assert set(groups) == {"exit status 3", "signal SIGKILL"}
    assert groups["exit status 3"]["reason"] == "status" and groups["signal SIGKILL"]["reason"] == "signal"
    assert all(g["count"] == 2 == len(g["runs"]) for g in groups.values())
    failures = {f["run"]: f for f in result["failures"]}
    assert sorted(failures) == sorted(r for g in groups.values() for r in g["runs"])
    for g in groups.values():
        ex = g["example"]
        assert ex["run"] in g["runs"] and failures[ex["run"]]["signature"] == g["signature"]
        assert ex["traces"] == failures[ex["run"]]["traces"]
    for f in failures.values():
        assert f["reasons"] == [f["signature"]]
        assert [os.path.basename(t).split(".")[:2] for t in f["traces"]] == [[f"run-{f['run']}", str(f["pid"])]]
        assert all((tmp_path / t).exists() for t in f["traces"])
        assert (f["log"] is not None) == (f["reason"] == "status")


def test_until_fail_stops_at_the_first_failure(tmp_path):
    script = write_script(tmp_path, FLAKY)
    result = stress_json(tmp_path, "--until-fail", "-j", "1", "-o", "out", "--", INTERPRETER, script,
                         str(tmp_path / "count"), "3")
    assert result["runs"] == 3 and result["failed"] == 1 and result["stopped_at_first_failure"]
    assert result["failures"][0]["run"] == 3


def test_duration_stops_starting_runs(tmp_path):
    t0 = time.monotonic()
    result = stress_json(tmp_path, "--duration", "1s", "-j", "2", "-o", "out", "--", INTERPRETER, "-c",
                         "import time; time.sleep(0.2)", status=0)
    assert 2 <= result["runs"] and result["failed"] == 0
    assert 1 <= time.monotonic() - t0 < 10 and result["elapsed_ns"] >= 1e9


def test_expect_status(tmp_path):
    script = write_script(tmp_path, "import sys\nsys.exit(7)\n")
    proc = stress(tmp_path, "-n", "3", "--expect-status", "7", "-o", "out", "--", INTERPRETER, script)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_timeout_kills_the_process_group(tmp_path):
    script = write_script(tmp_path, HANG)
    pids = tmp_path / "pids"
    t0 = time.monotonic()
    # 3 s: room for both pythons to start and write their child's pid on a
    # loaded machine before they are ended
    result = stress_json(tmp_path, "-n", "2", "-j", "2", "--timeout", "3", "-o", "out", "--", INTERPRETER,
                         script, str(pids))
    took = time.monotonic() - t0
    assert result["runs"] == 2 and result["failed"] == 2
    # the snapshot taken before the run was ended makes an exit-hang finding,
    # which comes first
    assert [g["signature"] for g in result["groups"]] == ["exit-hang"]
    assert all(f["reasons"] == ["exit-hang", "timeout"] for f in result["failures"])
    assert all((tmp_path / (t + ".snapshot")).exists() for f in result["failures"] for t in f["traces"])
    # and the summary lists them with the traces
    assert all(f["snapshots"] == [t + ".snapshot" for t in f["traces"]] for f in result["failures"])
    # SIGTERM is ignored: the SIGKILL 2 s later ended them
    assert all(4.5e9 < f["duration_ns"] < 12e9 for f in result["failures"]), result["failures"]
    assert took < 25
    children = [int(p) for p in pids.read_text().split()]
    assert len(children) == 2
    deadline = time.monotonic() + 5
    while any(alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in children)


def test_error_finding_is_a_failure(tmp_path, build_dir):
    """gilstate_after_finalize.py exits 0, but its trace has an error finding."""
    env = dict(os.environ, PYTHONPATH=scenario_build.build_extension(INTERPRETER, build_dir))
    result = stress_json(tmp_path, "-n", "2", "-j", "2", "-o", "out", "--", INTERPRETER,
                         os.path.join(SCENARIOS, "gilstate_after_finalize.py"), env=env)
    assert result["runs"] == 2 and result["failed"] == 2
    (group,) = result["groups"]
    assert group["reason"] == "finding" and group["label"] == "gilstate-after-finalize (PyGILState_Ensure)"
    # the top frame: the scenario's C function that made the call
    assert group["signature"].startswith("gilstate-after-finalize (PyGILState_Ensure) at native_waiter")
    for f in result["failures"]:
        assert f["reasons"] == [group["signature"]]  # exit status 0: the finding alone
        assert (tmp_path / f["log"]).read_text() == "main exits\n"


def test_unusable_or_missing_trace_is_a_failure(tmp_path):
    # the program overwrites its own trace's magic
    script = write_script(tmp_path, "import glob, os, sys\n"
                                    "(p,) = glob.glob(os.path.join(sys.argv[1], f'run-*.{os.getpid()}.gtr'))\n"
                                    "open(p, 'r+b').write(b'NOTATRACE')\n")
    result = stress_json(tmp_path, "-n", "2", "-o", "a", "--", INTERPRETER, script, str(tmp_path / "a"))
    assert result["failed"] == 2 and [g["signature"] for g in result["groups"]] == ["trace unusable"]
    assert "no GILTRACE magic" in result["failures"][0]["reasons"][0]
    # no python: no trace at all
    result = stress_json(tmp_path, "-n", "2", "-o", "b", "--", "/bin/true")
    assert result["failed"] == 2 and [g["signature"] for g in result["groups"]] == ["no trace"]


def test_ctrl_c_ends_the_runs_and_prints_the_summary(tmp_path):
    script = write_script(tmp_path, HANG)
    pids = tmp_path / "pids"
    proc = subprocess.Popen([GILTRACE, "stress", "-n", "100", "-j", "2", "-o", "out", "--", INTERPRETER, script,
                             str(pids)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 20
    while (not pids.exists() or len(pids.read_text().split()) < 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == -signal.SIGINT, out + err  # nothing failed: dies of the signal
    assert out.startswith("giltrace stress: 0/0 runs failed") and "interrupted" in out, out
    assert not (tmp_path / "out").exists()  # the interrupted runs' files are removed
    for pid in (int(p) for p in pids.read_text().split()):
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid)


def test_progress_line_on_a_terminal(tmp_path):
    script = write_script(tmp_path, CLEAN)
    master, slave = pty.openpty()
    proc = subprocess.Popen([GILTRACE, "stress", "-n", "20", "-j", "2", "-o", "out", "--", INTERPRETER, script],
                            stdout=subprocess.PIPE, stderr=slave, cwd=tmp_path)
    os.close(slave)
    shown = b""
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not data:
            break
        shown += data
    out = proc.communicate(timeout=30)[0].decode()
    os.close(master)
    assert proc.returncode == 0
    assert out.startswith("giltrace stress: 0/20 runs failed")
    assert shown.startswith(b"\rgiltrace stress: ") and b"/20 runs, 0 failed, " in shown and b"\n" not in shown
    assert shown.endswith(b"\r")  # cleared before the summary


@pytest.mark.parametrize("args, message", [
    (["--", "x"], "say when to stop"),
    (["-n", "0", "--", INTERPRETER], "-n must be a number"),
    (["-n", "1", "--timeout", "soon", "--", INTERPRETER], "--timeout"),
    (["-n", "1", "--", "/nonexistent/python"], "cannot run '/nonexistent/python'"),
    (["-n", "1", "-o", "full", "--", INTERPRETER], "is not empty"),
    (["-n", "1"], "usage:"),
])
def test_usage_errors(tmp_path, args, message):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    proc = stress(tmp_path, *args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_failed_runs_name_their_jitter_seed(tmp_path):
    """Each run under --provoke jitter gets a seed of its own; a failed
    run's seed is in the summary, so its schedule can be run again."""
    script = write_script(tmp_path, "import sys, threading\n"
                                    "t = threading.Thread(target=sum, args=(range(100000),))\n"
                                    "t.start(); t.join(); sys.exit(3)\n")
    summary = stress_json(tmp_path, "-n", "2", "-j", "1", "-o", "f", "--provoke", "jitter=20", "--",
                          INTERPRETER, script)
    seeds = []
    for failure in summary["failures"]:
        (trace,) = failure["traces"]
        rep = subprocess.run([GILTRACE, "report", "--json", trace], capture_output=True, text=True, timeout=60,
                             cwd=tmp_path)  # the summary's paths are relative to where stress ran
        assert failure["jitter_seed"] == json.loads(rep.stdout)["provoked"]["jitter_seed"] > 0
        seeds.append(failure["jitter_seed"])
    assert len(set(seeds)) == 2, seeds
    text = stress(tmp_path, "-n", "1", "-o", "g", "--provoke", f"jitter=20,seed={seeds[0]}", "--", INTERPRETER,
                  script).stdout
    assert "e.g. run 1 (pid " in text and f", jitter seed={seeds[0]}):" in text, text
