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

from helpers import GILTRACE, GILTRACE_SAN

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
    """A rename would leave the other name with the old result.  In place,
    the file is truncated only at the end: an unusable trace leaves it whole,
    a result shorter than the old file leaves none of it behind."""
    one, other = tmp_path / "one", tmp_path / "other"
    old = b"old result, longer than the new one\n" * 100000
    one.write_bytes(old)
    os.link(one, other)
    bad = tmp_path / "bad.gtr"
    bad.write_bytes(b"not a trace\n")
    proc = subprocess.run([GILTRACE_SAN, *COMMANDS[command](one, bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and one.read_bytes() == old, proc.stderr

    subprocess.run([GILTRACE_SAN, *COMMANDS[command](one, simple_trace)], check=True, capture_output=True, timeout=120)
    assert one.read_bytes() == other.read_bytes() and b"old result" not in one.read_bytes()
    assert one.stat().st_nlink == 2


def as_root_only():
    if os.geteuid() != 0:
        pytest.skip("changing a file's owner or group, or mounting, needs root")


@pytest.mark.parametrize("command", COMMANDS)
def test_owner_and_group_are_kept(command, simple_trace, tmp_path):
    """Someone else's file is written in place (a rename would make it ours);
    our own file with another group keeps the group."""
    as_root_only()
    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    for f in (theirs, ours):
        f.write_bytes(b"old result\n")
        f.chmod(0o664)
    os.chown(theirs, 65534, 65534)
    os.chown(ours, 0, 100)
    for f in (theirs, ours):
        subprocess.run([GILTRACE_SAN, *COMMANDS[command](f, simple_trace)], check=True, capture_output=True,
                       timeout=120)
        assert len(f.read_bytes()) > 4096
    assert (theirs.stat().st_uid, theirs.stat().st_gid) == (65534, 65534)
    assert (ours.stat().st_uid, ours.stat().st_gid) == (0, 100)
    assert stat.S_IMODE(ours.stat().st_mode) == 0o664


@pytest.mark.parametrize("command", COMMANDS)
def test_a_dangling_link_gets_its_destination(command, simple_trace, tmp_path):
    link, dest = tmp_path / "link", tmp_path / "dest"
    link.symlink_to("dest")  # relative to the link's folder
    proc = subprocess.run([GILTRACE_SAN, *COMMANDS[command](link, simple_trace)], capture_output=True, text=True,
                          timeout=120, preexec_fn=limit_file_size)
    assert proc.returncode == 2 and "File too large" in proc.stderr, proc.stderr
    assert link.is_symlink() and not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link"]

    subprocess.run([GILTRACE_SAN, *COMMANDS[command](link, simple_trace)], check=True, capture_output=True,
                   timeout=120, cwd="/")
    assert link.is_symlink() and len(dest.read_bytes()) > 4096


@pytest.mark.parametrize("command", COMMANDS)
def test_a_bind_mounted_file_is_filled(command, simple_trace, tmp_path):
    """A file mounted over another (a container's `-v out.json:/x/out.json`)
    cannot be renamed over: it is filled in place."""
    as_root_only()
    source, mounted = tmp_path / "source", tmp_path / "dir" / "mounted"
    mounted.parent.mkdir()
    source.write_bytes(b"old result\n" * 100000)
    mounted.write_bytes(b"")
    if subprocess.run(["mount", "--bind", str(source), str(mounted)], capture_output=True).returncode != 0:
        pytest.skip("mount --bind is not allowed here")
    try:
        subprocess.run([GILTRACE_SAN, *COMMANDS[command](mounted, simple_trace)], check=True, capture_output=True,
                       timeout=120)
        assert mounted.read_bytes() == source.read_bytes() and b"old result" not in source.read_bytes()
        assert sorted(p.name for p in mounted.parent.iterdir()) == ["mounted"]
    finally:
        subprocess.run(["umount", str(mounted)], check=True)


@pytest.mark.parametrize("command", COMMANDS)
def test_not_a_file_name(command, simple_trace, tmp_path):
    (tmp_path / "file").write_bytes(b"old result\n")
    for out in ("", f"{tmp_path}/", f"{tmp_path}/missing/", f"{tmp_path}/file/x"):
        proc = subprocess.run([GILTRACE_SAN, *COMMANDS[command](out, simple_trace)], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 2, (out, proc.stderr)
        assert len(proc.stderr.splitlines()) == 1, (out, proc.stderr)
        assert ("not a file name" if out == "" or out.endswith("/") else "Not a directory") in proc.stderr, out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


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
@pytest.mark.parametrize("stream", ["/dev/stdout", "/dev/stderr", "/dev/fd/1"])
def test_a_standard_stream_by_name_is_written_through(command, stream, simple_trace, tmp_path):
    """`... /dev/stdout >> log` appends, as `-` does: not a file replaced by name."""
    log = tmp_path / "log"
    log.write_bytes(b"first line\n")
    with open(log, "ab") as out:
        proc = subprocess.run([GILTRACE_SAN, *COMMANDS[command](stream, simple_trace)],
                              stdout=out if stream != "/dev/stderr" else subprocess.PIPE,
                              stderr=out if stream == "/dev/stderr" else subprocess.PIPE, timeout=120)
    assert proc.returncode == 0
    data = log.read_bytes()
    assert data.startswith(b"first line\n") and len(data) > 4096
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log"]


@pytest.mark.parametrize("command", COMMANDS)
def test_no_room_for_a_temporary_keeps_the_old_result(command, simple_trace, tmp_path):
    """A folder with no free inode: the command fails and the old result
    stays whole (it is not written in place instead)."""
    as_root_only()
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,nr_inodes=3", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not allowed here")
    try:
        out = disk / "result"
        out.write_bytes(b"old result\n")
        for i in range(10):  # use up the inodes
            try:
                (disk / f"filler{i}").write_bytes(b"")
            except OSError:
                break
        proc = subprocess.run([GILTRACE_SAN, *COMMANDS[command](out, simple_trace)], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 2 and "No space left on device" in proc.stderr, proc.stderr
        assert out.read_bytes() == b"old result\n"
    finally:
        subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.parametrize("command", COMMANDS)
def test_another_descriptor_by_name_is_written_through(command, simple_trace, tmp_path):
    """`... /dev/fd/N N>>log` appends; a descriptor not open is an error."""
    log = tmp_path / "log"
    log.write_bytes(b"first line\n")
    with open(log, "ab") as out:
        fd = out.fileno()
        proc = subprocess.run([GILTRACE_SAN, *COMMANDS[command](f"/dev/fd/{fd}", simple_trace)], pass_fds=(fd,),
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = log.read_bytes()
    assert data.startswith(b"first line\n") and len(data) > 4096

    proc = subprocess.run([GILTRACE_SAN, *COMMANDS[command]("/dev/fd/99", simple_trace)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "Bad file descriptor" in proc.stderr, proc.stderr
