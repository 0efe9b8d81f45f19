"""The files `report --html` and `export -o` write: whole or not at all.

A failed write leaves the previous result as it was (and no temporary file
beside it), a device is written in place and never removed, and a trace is
never overwritten.
"""
import os
import resource
import signal
import stat
import subprocess

import pytest

from conftest import GILTRACE, GILTRACE_SAN, write_script

COMMANDS = {
    "report --html": lambda out, trace: ["report", "--html", str(out), str(trace)],
    "export": lambda out, trace: ["export", "-o", str(out), str(trace)],
}


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    python = "/usr/bin/python3.11"
    if not os.access(python, os.X_OK):
        pytest.skip(f"{python} not installed (apt-get install python3.11)")
    tmp = tmp_path_factory.mktemp("output")
    script = write_script(tmp, "import threading\nts=[threading.Thread(target=sum, args=(range(300000),))"
                               " for _ in range(3)]\n[t.start() for t in ts]; [t.join() for t in ts]\n")
    path = tmp / "t.gtr"
    subprocess.run([GILTRACE, "run", "-o", str(path), "--", python, script], check=True, timeout=60,
                   capture_output=True)
    return path


def limit_file_size():
    """In the child: writes past 4 KiB fail with EFBIG instead of a signal."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


@pytest.mark.parametrize("command", COMMANDS)
def test_a_failed_write_keeps_the_previous_result(command, trace, tmp_path):
    out = tmp_path / "result"
    subprocess.run([GILTRACE_SAN, *COMMANDS[command](out, trace)], check=True, capture_output=True, timeout=120)
    good = out.read_bytes()
    assert len(good) > 4096

    proc = subprocess.run([GILTRACE_SAN, *COMMANDS[command](out, trace)], capture_output=True, text=True,
                          timeout=120, preexec_fn=limit_file_size)
    assert proc.returncode == 2, proc.stderr
    assert f"cannot write '{out}': File too large" in proc.stderr, proc.stderr
    assert out.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_new_result_appears_only_whole(command, trace, tmp_path):
    out = tmp_path / "result"
    proc = subprocess.run([GILTRACE_SAN, *COMMANDS[command](out, trace)], capture_output=True, text=True,
                          timeout=120, preexec_fn=limit_file_size)
    assert proc.returncode == 2 and "File too large" in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []

    subprocess.run([GILTRACE_SAN, *COMMANDS[command](out, trace)], check=True, capture_output=True, timeout=120,
                   preexec_fn=lambda: os.umask(0o027))
    assert stat.S_IMODE(out.stat().st_mode) == 0o640  # as fopen() would have made it
    out.chmod(0o604)
    subprocess.run([GILTRACE_SAN, *COMMANDS[command](out, trace)], check=True, capture_output=True, timeout=120)
    assert stat.S_IMODE(out.stat().st_mode) == 0o604  # as fopen() would have left it


@pytest.mark.parametrize("command", COMMANDS)
def test_a_device_is_written_in_place_and_kept(command, trace, tmp_path):
    full = tmp_path / "full"
    try:
        os.mknod(full, 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # /dev/full's twin
    except PermissionError:
        pytest.skip("making a device node needs root")
    proc = subprocess.run([GILTRACE_SAN, *COMMANDS[command](full, trace)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "No space left on device" in proc.stderr, proc.stderr
    assert stat.S_ISCHR(full.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_trace_is_never_the_output(command, trace, tmp_path):
    other = tmp_path / "other.gtr"
    other.write_bytes(trace.read_bytes())
    for out, says in [(other, "is a trace"), (trace, "the trace itself")]:
        before = out.read_bytes()
        proc = subprocess.run([GILTRACE, *COMMANDS[command](out, trace)], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 2 and says in proc.stderr and "not overwriting" in proc.stderr, proc.stderr
        assert out.read_bytes() == before
