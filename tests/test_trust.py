"""The traced program never notices giltrace (issue 10, items 1-3, 5-7).

Preloaded by environment only, with default options, a python under the shim
must see no descriptor of the shim's, no file of its own touched, no output
on stderr unless there is an error, and no change when the disk is full or
the filesystem has no fallocate.  Each test compares with the same program
run without the shim.
"""
import glob
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile

import pytest

from helpers import GILTRACE, ROOT, SHIM, WAIT_THREADS_GONE, assert_recorded, report, write_script

SCENARIOS = os.path.join(ROOT, "tests", "scenarios")
DEBIAN = "/usr/bin/python3.11"

# Enough GIL handoffs to outgrow the trace's first megabyte (16 chunks), so
# that the shim must grow the file while the program runs.
WORK = """
import threading, time
def work(n):
    for _ in range(n):
        time.sleep(0)
def handoffs(n=20000):
    ts = [threading.Thread(target=work, args=(n,)) for _ in range(2)]
    [t.start() for t in ts]
    [t.join() for t in ts]
"""


def need(python):
    if not python or not os.access(python, os.X_OK):
        pytest.skip(f"{python} not installed")


def traced_env(tmp_path, options="", **extra):
    out = tmp_path / "traces"
    opts = f"output={out}/%p.gtr" + (":" + options if options else "")
    return dict(os.environ, LD_PRELOAD=SHIM, GILTRACE_OPTIONS=opts, **extra), out


def run(cmd, env=None, cwd=None, timeout=120):
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def traces_in(folder):
    return sorted(glob.glob(os.path.join(str(folder), "*.gtr")))


# ---- 1. the trace's descriptor ---------------------------------------------------

FD_STATUS = """
import os, stat, threading, time
t = threading.Thread(target=sum, args=(range(1000),)); t.start(); t.join()
# 3.8's threads end in pthread_exit, whose unwinder glibc loads then: its
# descriptor would race the scan below (untraced; the shim loads it early)
while len(os.listdir("/proc/self/task")) > 1:
    time.sleep(0.001)
fds = []
for fd in range(os.sysconf("SC_OPEN_MAX")):
    try:
        os.fstat(fd)
    except OSError:
        continue
    fds.append(fd)
print(fds)
"""


def test_no_descriptor_of_the_shim_in_the_program(python, tmp_path):
    """CPython's test_subprocess test_pass_fds_redirected lists every
    descriptor below the limit in a child python: the trace's must not be
    there, whatever its number."""
    need(python)
    script = write_script(tmp_path, FD_STATUS)
    plain = run([python, script])
    env, out = traced_env(tmp_path)
    traced = run([python, script], env=env)
    assert plain.returncode == traced.returncode == 0, traced.stderr
    assert traced.stdout == plain.stdout
    assert traced.stderr == ""
    [trace] = traces_in(out)  # it was traced: the thread and the exit are in the trace
    assert_recorded(report(trace), workers=1)


CLOSE_ALL = WORK + """
import hashlib, os, sys
os.closerange(3, 65536)          # as daemons and close_range() users do
fd = os.open("data.bin", os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, bytes(range(256)) * 60)
handoffs()                       # the trace grows meanwhile
os.lseek(fd, 0, os.SEEK_SET)
data = os.read(fd, 1 << 26)
print(len(data), hashlib.sha256(data).hexdigest(), os.fstat(fd).st_size)
os.close(fd)
"""


def test_program_that_closes_every_descriptor_keeps_its_file(python, tmp_path):
    need(python)
    script = write_script(tmp_path, CLOSE_ALL)
    (tmp_path / "plain").mkdir()
    (tmp_path / "traced").mkdir()
    plain = run([python, script], cwd=tmp_path / "plain")
    env, out = traced_env(tmp_path)
    traced = run([python, script], env=env, cwd=tmp_path / "traced")
    assert plain.returncode == traced.returncode == 0, traced.stderr
    assert traced.stdout == plain.stdout
    assert (tmp_path / "traced" / "data.bin").read_bytes() == (tmp_path / "plain" / "data.bin").read_bytes()
    assert traced.stderr == ""
    [trace] = traces_in(out)
    rep = report(trace)
    assert not rep["truncated"], rep["notes"]
    assert os.path.getsize(trace) > 1 << 20  # it grew while the program ran
    assert sum(t["acquisitions"] for t in rep["threads"]) >= 40000


REPLACE_TRACE = WORK + """
import glob, os, sys
[trace] = glob.glob(os.path.join(sys.argv[1], "*.gtr"))
os.rename(trace, trace[:-4] + ".moved.gtr")
with open(trace, "wb") as f:      # someone else's file, under the trace's name
    f.write(b"not a trace\\n" * 100)
handoffs()
print("done")
"""


def test_trace_replaced_under_its_name_is_left_alone(tmp_path):
    """The shim finds its trace by name and identity: a file put in its
    place is never grown or truncated, and the trace it had says it lost
    the rest."""
    need(DEBIAN)
    env, out = traced_env(tmp_path)
    out.mkdir()
    script = write_script(tmp_path, REPLACE_TRACE)
    proc = run([DEBIAN, script, str(out)], env=env)
    assert proc.returncode == 0 and proc.stdout == "done\n", proc.stderr
    [impostor] = [p for p in traces_in(out) if not p.endswith(".moved.gtr")]
    assert open(impostor, "rb").read() == b"not a trace\n" * 100
    warnings = [l for l in proc.stderr.splitlines() if l.startswith("giltrace:")]
    assert len(warnings) == 1 and "leads to another file" in warnings[0], proc.stderr
    [moved] = glob.glob(str(out / "*.moved.gtr"))
    rep = report(moved)
    assert rep["truncated"]
    assert any("renamed, replaced or removed" in n for n in rep["notes"]), rep["notes"]


# ---- 2. stderr ---------------------------------------------------------------------

def test_daemon_threads_ended_at_exit_print_nothing(python, tmp_path):
    """CPython's test_threading test_4_daemon_threads: a child's stderr must
    be empty.  Finalization ending daemon threads is CPython's normal path:
    notes stay in the trace, nothing on stderr."""
    need(python)
    env, out = traced_env(tmp_path)
    script = os.path.join(SCENARIOS, "daemon_io.py")
    # whether finalization ends a daemon thread (a note) is up to timing:
    # about 1 run in 20 ends none; run until one has, up to 8 runs
    notes = runs = 0
    while runs < 8 and not notes:
        runs += 1
        proc = run([python, script], env=env)
        assert proc.returncode == 0 and proc.stdout == "main exits\n"
        assert proc.stderr == ""
        notes = 0
        for trace in traces_in(out):
            result = json.loads(run([GILTRACE, "check", "--json", trace]).stdout)[0]
            assert not [f for f in result["findings"] if f["severity"] == "error"]
            notes += len(result["findings"])
    assert notes > 0, f"finalization ended no daemon thread in {runs} runs: the test shows nothing"


def test_notes_on_request_and_the_report_in_a_log_file(tmp_path):
    need(DEBIAN)
    script = os.path.join(SCENARIOS, "daemon_io.py")
    env, out = traced_env(tmp_path, "check_severity=note")
    for _ in range(5):
        proc = run([DEBIAN, script], env=env)
        if proc.stderr:
            break
    assert "giltrace NOTE:" in proc.stderr or "giltrace note" in proc.stderr.lower(), proc.stderr
    log = tmp_path / "logs" / "gt"
    (tmp_path / "logs").mkdir()
    env, out = traced_env(tmp_path, f"check_severity=note:log_path={log}")
    for _ in range(5):
        proc = run([DEBIAN, script], env=env)
        assert proc.stderr == ""
        if os.listdir(tmp_path / "logs"):
            break
    [written] = os.listdir(tmp_path / "logs")
    assert re.fullmatch(r"gt\.\d+", written)  # log_path=X writes X.PID, as the sanitizers do
    text = (tmp_path / "logs" / written).read_text()
    assert "exit-in-take-gil" in text or "parked-at-exit" in text
    assert stat.S_IMODE(os.stat(tmp_path / "logs" / written).st_mode) == 0o600


def test_an_error_is_still_printed(python, extension, tmp_path):
    need(python)
    env, out = traced_env(tmp_path, PYTHONPATH=extension)
    proc = run([python, os.path.join(SCENARIOS, "gilstate_after_finalize.py")], env=env)
    assert proc.returncode == 0 and proc.stdout == "main exits\n"
    assert "giltrace ERROR: gilstate-after-finalize" in proc.stderr
    # and into the log file instead, when asked
    env, out = traced_env(tmp_path, f"log_path={tmp_path}/log.%p", PYTHONPATH=extension)
    proc = run([python, os.path.join(SCENARIOS, "gilstate_after_finalize.py")], env=env)
    assert proc.stderr == ""
    [log] = glob.glob(str(tmp_path / "log.*"))
    assert "giltrace ERROR: gilstate-after-finalize" in open(log).read()


# ---- 3. a full disk, a filesystem without fallocate --------------------------------

def mounted(tmp_path, kind):
    """A small filesystem of `kind` at tmp_path/mnt, or a skip saying why."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if kind == "tmpfs":
        cmd = ["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mnt)]
    else:
        image = tmp_path / "ext2.img"
        with open(image, "wb") as f:
            f.truncate(4 << 20)
        mk = run(["mkfs.ext2", "-q", "-F", str(image)])
        if mk.returncode != 0:
            pytest.skip(f"mkfs.ext2 failed: {mk.stderr.strip()} (apt-get install e2fsprogs)")
        cmd = ["mount", "-o", "loop", str(image), str(mnt)]
    m = run(cmd)
    if m.returncode != 0:
        pytest.skip(f"cannot mount {kind}: {m.stderr.strip()}")
    return mnt


@pytest.mark.parametrize("kind", ["tmpfs", "ext2"])
def test_full_disk_stops_recording_and_the_program_runs_on(tmp_path, kind):
    """tmpfs of 200 KiB: the first megabyte does not fit; ext2 of 4 MiB has
    no fallocate (the old code fell back to a sparse file: SIGBUS)."""
    need(DEBIAN)
    mnt = mounted(tmp_path, kind)
    try:
        script = write_script(tmp_path, WORK + "handoffs(60000)\nprint('done')\n")
        plain = run([DEBIAN, script])
        env = dict(os.environ, LD_PRELOAD=SHIM, GILTRACE_OPTIONS=f"output={mnt}/t.gtr")
        traced = run([DEBIAN, script], env=env)
        assert traced.returncode == plain.returncode == 0, (traced.returncode, traced.stderr)
        assert traced.stdout == plain.stdout
        lines = traced.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("giltrace: "), traced.stderr
        assert "No space left on device" in lines[0] or "File too large" in lines[0]
        if kind == "ext2":
            # 4 MiB hold the first megabyte: a trace that says what it lost
            rep = report(str(mnt / "t.gtr"))
            assert rep["truncated"]
            assert any("out of trace space" in n for n in rep["notes"]), rep["notes"]
    finally:
        run(["umount", "-l", str(mnt)])


# ---- 5. exit paths ----------------------------------------------------------------

def fake_giltrace(tmp_path, body):
    path = tmp_path / "fake-giltrace"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_at_exit_check_gets_the_trace_by_descriptor_and_nothing_else(tmp_path):
    need(DEBIAN)
    seen = tmp_path / "seen"
    fake = fake_giltrace(tmp_path, f'ls /proc/self/fd > {seen}.fds; echo "$@" > {seen}.args; '
                                   f'head -c 8 < "$5" > {seen}.magic\n')
    env, out = traced_env(tmp_path, f"giltrace={fake}")
    script = write_script(tmp_path, "import os, threading\nfd = os.open('/dev/null', os.O_RDONLY)\n"
                                    "t = threading.Thread(target=sum, args=(range(9),)); t.start(); t.join()\n")
    proc = run([DEBIAN, script], env=env)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    args = open(f"{seen}.args").read().split()
    assert args == ["check", "--quiet-if-clean", "--min-severity", "error", "/dev/fd/3"]
    assert open(f"{seen}.magic", "rb").read() == b"GILTRACE"
    fds = {int(x) for x in open(f"{seen}.fds").read().split()}
    assert fds <= {0, 1, 2, 3, 4}  # 4: ls's own directory handle


def test_a_stuck_checker_does_not_hold_the_exit(tmp_path):
    need(DEBIAN)
    fake = fake_giltrace(tmp_path, "exec sleep 600\n")
    env, out = traced_env(tmp_path, f"giltrace={fake}:check_timeout=1")
    proc = run([DEBIAN, "-c", "import threading; t = threading.Thread(target=sum, args=(range(9),)); "
                              "t.start(); t.join(); print('ok')"], env=env, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "ok\n"
    [line] = proc.stderr.splitlines()
    assert "took longer than 1 s and was stopped" in line and "giltrace check" in line


def test_exit_through__exit_closes_the_trace_without_a_check(tmp_path):
    """os._exit() may come from a signal handler: the shim only stores."""
    need(DEBIAN)
    marker = tmp_path / "checked"
    fake = fake_giltrace(tmp_path, f"touch {marker}\n")
    env, out = traced_env(tmp_path, f"giltrace={fake}")
    proc = run([DEBIAN, "-c", "import os, threading; t = threading.Thread(target=sum, args=(range(9),)); "
                              "t.start(); t.join(); os._exit(3)"], env=env)
    assert proc.returncode == 3 and proc.stderr == ""
    assert not marker.exists()
    [trace] = traces_in(out)
    rep = report(trace)
    assert not rep["truncated"]
    assert_recorded(rep, workers=1, finalization=False)  # os._exit() skips finalization


# ---- 6. secure execution -------------------------------------------------------------

def test_set_uid_process_takes_no_options_and_writes_nothing(tmp_path):
    """A set-uid python reached by the shim (a set-uid library in a trusted
    folder, as ld.so requires in secure execution): GILTRACE_OPTIONS from the
    caller must not choose files written with the program's identity."""
    need(DEBIAN)
    if os.geteuid() != 0:
        pytest.skip("making a set-uid interpreter needs root")
    libdir = "/usr/lib/x86_64-linux-gnu"
    lib = tempfile.mktemp(prefix="libgiltrace-test-", suffix=".so", dir=libdir)
    shutil.copy(SHIM, lib)
    os.chmod(lib, 0o4755)
    suid = tmp_path / "python-suid"
    shutil.copy(DEBIAN, suid)
    os.chown(suid, 65534, 65534)
    os.chmod(suid, 0o4755)
    os.chmod(tmp_path, 0o755)
    target = tmp_path / "written"
    target.mkdir()
    os.chmod(target, 0o777)
    try:
        env = dict(os.environ, LD_PRELOAD=os.path.basename(lib),
                   GILTRACE_OPTIONS=f"output={target}/%p.gtr:verbose=1")
        code = "import os, threading; t = threading.Thread(target=sum, args=(range(9),)); t.start(); t.join(); " \
               "print(os.geteuid())"
        proc = run([str(suid), "-c", code], env=env)
        assert proc.returncode == 0 and proc.stdout == "65534\n", proc.stderr
        # the library was loaded (else this test shows nothing) ...
        maps = run([str(suid), "-c", "print(open('/proc/self/maps').read())"], env=env).stdout
        assert os.path.basename(lib) in maps
        # ... and stayed out of the way
        assert os.listdir(target) == [] and proc.stderr == ""
    finally:
        os.unlink(lib)


# ---- 7. files it creates ------------------------------------------------------------

def test_trace_and_folders_are_private(tmp_path):
    need(DEBIAN)
    env = dict(os.environ, LD_PRELOAD=SHIM, GILTRACE_OPTIONS=f"output={tmp_path}/a/b/%p.gtr")
    code = "import os, threading; os.umask(0); t = threading.Thread(target=sum, args=(range(9),)); " \
           "t.start(); t.join()"
    # umask 0 from the start: the shim activates before the script runs
    proc = subprocess.run(["sh", "-c", f'umask 000; exec {DEBIAN} -c "{code}"'], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    [trace] = glob.glob(str(tmp_path / "a" / "b" / "*.gtr"))
    assert stat.S_IMODE(os.stat(trace).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "a").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "a" / "b").st_mode) == 0o700


def test_another_users_link_in_a_sticky_folder_is_not_followed(tmp_path):
    need(DEBIAN)
    if os.geteuid() != 0:
        pytest.skip("a link owned by another user needs root to make")
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    victim = tmp_path / "victim"
    victim.mkdir()
    link = shared / "traces"
    os.symlink(victim, link)
    os.lchown(link, 65534, 65534)
    env = dict(os.environ, LD_PRELOAD=SHIM, GILTRACE_OPTIONS=f"output={link}/t.gtr")
    proc = run([DEBIAN, "-c", "import threading; t = threading.Thread(target=sum, args=(range(9),)); "
                              "t.start(); t.join(); print('ok')"], env=env)
    assert proc.returncode == 0 and proc.stdout == "ok\n"
    assert os.listdir(victim) == []
    [line] = proc.stderr.splitlines()
    assert "symbolic link" in line and "tracing is off" in line
    # our own link there is followed
    os.lchown(link, os.geteuid(), os.getegid())
    proc = run([DEBIAN, "-c", "import threading; t = threading.Thread(target=sum, args=(range(9),)); "
                              "t.start(); t.join()"], env=env)
    assert proc.stderr == "" and os.listdir(victim) == ["t.gtr"]


def test_output_on_a_device_creates_nothing_beside_it(tmp_path):
    need(DEBIAN)
    before = set(os.listdir("/dev"))
    env = dict(os.environ, LD_PRELOAD=SHIM, GILTRACE_OPTIONS="output=/dev/full")
    proc = run([DEBIAN, "-c", "import threading; t = threading.Thread(target=sum, args=(range(9),)); "
                              "t.start(); t.join(); print('ok')"], env=env)
    created = set(os.listdir("/dev")) - before
    for name in created:
        if name.startswith("full."):
            os.unlink(os.path.join("/dev", name))
    assert proc.returncode == 0 and proc.stdout == "ok\n"
    assert not [n for n in created if n.startswith("full.")]
    [line] = proc.stderr.splitlines()
    assert "not a regular file" in line


# ---- 4. fork and exec -----------------------------------------------------------

FORKS = """
import os, subprocess, sys, threading
t = threading.Thread(target=sum, args=(range(9),)); t.start(); t.join()
for _ in range(20):
    subprocess.run(["/bin/true"], check=True)       # fork (or vfork) + exec at once
pid = os.fork()
if pid == 0:
    os.execv("/bin/true", ["true"])                 # CPython's after-fork work, then exec
os.waitpid(pid, 0)
pid = os.fork()
if pid == 0:                                        # a child that runs python
    t = threading.Thread(target=sum, args=(range(9),)); t.start(); t.join()
    print("child", os.getpid(), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
print("parent", os.getpid())
"""


def test_children_that_exec_leave_no_trace(python, tmp_path):
    need(python)
    script = write_script(tmp_path, FORKS)
    env, out = traced_env(tmp_path)
    proc = run([python, script], env=env)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    pids = dict(line.split() for line in proc.stdout.split("\n") if line)
    assert sorted(os.path.basename(p) for p in traces_in(out)) == \
        sorted(f"{pid}.gtr" for pid in pids.values())
    child = report(str(out / f"{pids['child']}.gtr"))
    assert child["process"]["fork_child"] and not child["truncated"]


# ---- 8. ring mode stays bounded --------------------------------------------------

SHORT_THREADS = """
import threading, time
def work():
    for _ in range(50):
        time.sleep(0)
for _ in range(300):
    ts = [threading.Thread(target=work) for _ in range(2)]
    [t.start() for t in ts]
    [t.join() for t in ts]
""" + WAIT_THREADS_GONE + """
print("ok")
"""


def test_ring_follows_the_threads_alive_not_the_threads_started(tmp_path):
    """600 threads, at most 3 alive at once, 1 MiB each: the trace keeps
    about 3 MiB (it was 600 MiB)."""
    need(DEBIAN)
    script = write_script(tmp_path, SHORT_THREADS)
    env, out = traced_env(tmp_path, "mode=ring:ring_size=1")
    proc = run([DEBIAN, script], env=env, timeout=300)
    assert proc.returncode == 0 and proc.stdout == "ok\n" and proc.stderr == ""
    [trace] = traces_in(out)
    assert os.path.getsize(trace) < 8 << 20
    rep = report(trace)
    assert rep["model_errors"] == []
    assert any(t["main"] for t in rep["threads"])
    # the last threads' ends are kept
    assert sum(1 for t in rep["threads"] if t["exit"] and t["exit"]["how"] == "return") >= 2


def test_a_child_running_as_another_user_stays_silent(tmp_path):
    """CPython's test_subprocess test_user: a child started with user= runs
    python as another user, who may not write the private trace folder of
    the user who asked for traces: it runs untraced and says nothing."""
    need(DEBIAN)
    if os.geteuid() != 0:
        pytest.skip("starting a child as another user needs root")
    env, out = traced_env(tmp_path)
    code = ("import subprocess, sys, threading\n"
            "t = threading.Thread(target=sum, args=(range(9),)); t.start(); t.join()\n"
            "p = subprocess.run([sys.executable, '-c', 'import os; print(os.getuid())'], user=65534,\n"
            "                   capture_output=True, text=True)\n"
            "print(p.returncode, p.stdout.strip(), repr(p.stderr))\n")
    proc = run([DEBIAN, "-c", code], env=env, cwd="/")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout == "0 65534 ''\n"
    assert len(traces_in(out)) == 1  # the parent's
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o700
