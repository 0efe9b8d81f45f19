"""The files `report --html` and `export -o` write: whole or not at all.

A failed write leaves the previous result as it was (and no temporary file
beside it); a link's target is what is replaced; devices, fifos and files
with other names (hard links) are written in place and never removed; a
trace is never overwritten.
"""
import os
import resource
import signal
import stat
import subprocess

import pytest

from conftest import GILTRACE, GILTRACE_SAN

COMMANDS = {
    "report --html": lambda out, trace: ["report", "--html", str(out), str(trace)],
    "export": lambda out, trace: ["export", "-o", str(out), str(trace)],
}


def limit_file_size():
    """In the child: writes past 4 KiB fail with EFBIG instead of a signal."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


@pytest.mark.parametrize("command", COMMANDS)
def test_a_failed_write_keeps_the_previous_result(command, simple_trace, tmp_path):
    out = tmp_path / "result"
    subprocess.run([GILTRACE_SAN, *COMMANDS[command](out, simple_trace)], check=True, capture_output=True, timeout=120)
    good = out.read_bytes()
    assert len(good) > 4096

    proc = subprocess.run([GILTRACE_SAN, *COMMANDS[command](out, simple_trace)], capture_output=True, text=True,
                          timeout=120, preexec_fn=limit_file_size)
    assert proc.returncode == 2, proc.stderr
    assert f"cannot write '{out}': File too large" in proc.stderr, proc.stderr
    assert out.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_new_result_appears_only_whole(command, simple_trace, tmp_path):
    out = tmp_path / "result"
    proc = subprocess.run([GILTRACE_SAN, *COMMANDS[command](out, simple_trace)], capture_output=True, text=True,
                          timeout=120, preexec_fn=limit_file_size)
    assert proc.returncode == 2 and "File too large" in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []

    subprocess.run([GILTRACE_SAN, *COMMANDS[command](out, simple_trace)], check=True, capture_output=True, timeout=120,
                   preexec_fn=lambda: os.umask(0o027))
    assert stat.S_IMODE(out.stat().st_mode) == 0o640  # as fopen() would have made it
    out.chmod(0o604)
    subprocess.run([GILTRACE_SAN, *COMMANDS[command](out, simple_trace)], check=True, capture_output=True, timeout=120)
    assert stat.S_IMODE(out.stat().st_mode) == 0o604  # as fopen() would have left it


@pytest.mark.parametrize("command", COMMANDS)
def test_a_device_is_written_in_place_and_kept(command, simple_trace, tmp_path):
    full = tmp_path / "full"
    try:
        os.mknod(full, 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # /dev/full's twin
    except PermissionError:
        pytest.skip("making a device node needs root")
    proc = subprocess.run([GILTRACE_SAN, *COMMANDS[command](full, simple_trace)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "No space left on device" in proc.stderr, proc.stderr
    assert stat.S_ISCHR(full.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_trace_is_never_the_output(command, simple_trace, tmp_path):
    other = tmp_path / "other.gtr"
    other.write_bytes(simple_trace.read_bytes())
    link = tmp_path / "link.gtr"
    link.symlink_to(simple_trace)
    for out, says in [(other, "is a trace"), (simple_trace, "the trace itself"), (link, "the trace itself")]:
        before = out.read_bytes()
        proc = subprocess.run([GILTRACE, *COMMANDS[command](out, simple_trace)], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 2 and says in proc.stderr and "not overwriting" in proc.stderr, proc.stderr
        assert out.read_bytes() == before


@pytest.mark.parametrize("command", COMMANDS)
def test_a_link_is_followed_and_its_target_replaced_whole(command, simple_trace, tmp_path):
    target, link = tmp_path / "target", tmp_path / "link"
    target.write_bytes(b"old result\n")
    link.symlink_to(target)
    proc = subprocess.run([GILTRACE_SAN, *COMMANDS[command](link, simple_trace)], capture_output=True, text=True,
                          timeout=120, preexec_fn=limit_file_size)
    assert proc.returncode == 2 and "File too large" in proc.stderr, proc.stderr
    assert target.read_bytes() == b"old result\n" and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "target"]

    subprocess.run([GILTRACE_SAN, *COMMANDS[command](link, simple_trace)], check=True, capture_output=True, timeout=120)
    assert link.is_symlink() and len(target.read_bytes()) > 4096


@pytest.mark.parametrize("command", COMMANDS)
def test_a_hard_linked_file_is_written_in_place(command, simple_trace, tmp_path):
    """A rename would leave the other name with the old result."""
    one, other = tmp_path / "one", tmp_path / "other"
    one.write_bytes(b"old result, longer than nothing\n" * 1000)
    os.link(one, other)
    subprocess.run([GILTRACE_SAN, *COMMANDS[command](one, simple_trace)], check=True, capture_output=True, timeout=120)
    assert one.read_bytes() == other.read_bytes() and b"old result" not in one.read_bytes()
    assert one.stat().st_nlink == 2


@pytest.mark.parametrize("command", COMMANDS)
def test_a_fifo_is_written_in_place(command, simple_trace, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    try:
        proc = subprocess.run([GILTRACE_SAN, *COMMANDS[command](fifo, simple_trace)], capture_output=True, text=True,
                              timeout=60)
        data = reader.communicate(timeout=60)[0]
    finally:
        reader.kill()
    assert proc.returncode == 0, proc.stderr
    assert data.startswith(b"<!DOCTYPE html>" if command.startswith("report") else b"{")
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unusable_trace_leaves_the_old_result(command, tmp_path):
    bad = tmp_path / "bad.gtr"
    bad.write_bytes(b"not a trace\n")
    out = tmp_path / "result"
    out.write_bytes(b"old result\n")
    proc = subprocess.run([GILTRACE_SAN, *COMMANDS[command](out, bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "bad.gtr" in proc.stderr, proc.stderr
    assert out.read_bytes() == b"old result\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.gtr", "result"]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_name_as_long_as_the_system_allows(command, simple_trace, tmp_path):
    out = tmp_path / ("a" * (os.pathconf(tmp_path, "PC_NAME_MAX") - 5) + ".json")
    subprocess.run([GILTRACE_SAN, *COMMANDS[command](out, simple_trace)], check=True, capture_output=True, timeout=120)
    assert len(out.read_bytes()) > 4096


@pytest.mark.parametrize("command", COMMANDS)
def test_dev_stdout_is_standard_output(command, simple_trace, tmp_path):
    """`... /dev/stdout >> log` appends, as `-` does: not a file replaced by name."""
    log = tmp_path / "log"
    log.write_bytes(b"first line\n")
    with open(log, "ab") as out:
        proc = subprocess.run([GILTRACE_SAN, *COMMANDS[command]("/dev/stdout", simple_trace)], stdout=out,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = log.read_bytes()
    assert data.startswith(b"first line\n") and len(data) > 4096
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log"]
