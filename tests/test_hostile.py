"""Bad input never crashes the tools (run under ASan and UBSan): exit 2 and
one line for unusable files; a clear note and what could be read for a
damaged trace."""
import os
import random
import struct
import subprocess

import pytest

from helpers import (GILTRACE, GILTRACE_SAN, assert_every_reader_survives, assert_recorded, giltrace_run, report,
                     run_tool, write_script)

INTERPRETER = "/usr/bin/python3.11"


def assert_unusable(path):
    for cmd in (["report"], ["report", "--json"], ["dump"]):
        proc = run_tool(*cmd, str(path))
        assert proc.returncode == 2, (cmd, proc.stderr)
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("giltrace: "), proc.stderr
        assert "AddressSanitizer" not in proc.stderr and "runtime error" not in proc.stderr


@pytest.fixture(scope="module")
def real_trace(tmp_path_factory):
    if not os.access(INTERPRETER, os.X_OK):
        pytest.skip(f"{INTERPRETER} not installed")
    tmp = tmp_path_factory.mktemp("real")
    script = write_script(tmp, "import threading\n"
                          "ts=[threading.Thread(target=sum, args=(range(100000),)) for _ in range(3)]\n"
                          "[t.start() for t in ts]; [t.join() for t in ts]\n")
    proc, trace = giltrace_run(INTERPRETER, script, tmp)
    assert proc.returncode == 0
    assert_recorded(report(trace), workers=3)  # events for the damage to reach
    return open(trace, "rb").read()


def test_empty_file(tmp_path):
    (tmp_path / "empty.gtr").write_bytes(b"")
    assert_unusable(tmp_path / "empty.gtr")


def test_missing_file_and_directory(tmp_path):
    assert_unusable(tmp_path / "missing.gtr")
    assert_unusable(tmp_path)


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes(tmp_path, seed):
    """Random bytes behind a valid magic and version, so that they reach the
    header's checks (sizes, offsets) rather than stopping at the magic."""
    rnd = random.Random(seed)
    data = bytearray(rnd.getrandbits(8) for _ in range(rnd.randint(4096, 200000)))
    data[0:8] = b"GILTRACE"
    struct.pack_into("<HH", data, 8, 3, rnd.randint(0, 9))
    (tmp_path / "r.gtr").write_bytes(bytes(data))
    assert_unusable(tmp_path / "r.gtr")
    proc = run_tool("report", str(tmp_path / "r.gtr"))
    assert "not a giltrace trace" not in proc.stderr and "format" not in proc.stderr, proc.stderr


def test_wrong_version(tmp_path, real_trace):
    data = bytearray(real_trace)
    struct.pack_into("<H", data, 8, 99)
    (tmp_path / "v.gtr").write_bytes(bytes(data))
    assert_unusable(tmp_path / "v.gtr")
    proc = run_tool("report", str(tmp_path / "v.gtr"))
    assert "format 99." in proc.stderr  # 99.<the writer's minor>


def test_truncated_inside_header(tmp_path, real_trace):
    (tmp_path / "h.gtr").write_bytes(real_trace[:100])
    assert_unusable(tmp_path / "h.gtr")


def flip_bytes(data, seed, count):
    """`count` random bytes after the header replaced."""
    rnd = random.Random(seed)
    data = bytearray(data)
    for _ in range(count):
        data[rnd.randrange(4096, len(data))] = rnd.getrandbits(8)
    return data


@pytest.mark.parametrize("keep", [4096, 4096 + 70000, 4096 + 65536 + 65536 + 1000])
def test_cut_short_reads_what_is_there(tmp_path, real_trace, keep):
    """Every reader reads what is there; check calls it incomplete (2)."""
    assert_every_reader_survives(tmp_path, real_trace[:keep], damaged_may_exit_2=False, check_statuses=(2,))


@pytest.mark.parametrize("seed", range(8))
def test_corrupted_chunks_read_what_is_there(tmp_path, real_trace, seed):
    """Random bytes flipped after the header: never a crash."""
    assert_every_reader_survives(tmp_path, flip_bytes(real_trace, seed, 200))


def test_several_traces_one_bad(tmp_path, real_trace):
    (tmp_path / "good.gtr").write_bytes(real_trace)
    (tmp_path / "bad.gtr").write_bytes(b"nope")
    proc = subprocess.run([GILTRACE, "report", "--json", str(tmp_path / "good.gtr"), str(tmp_path / "bad.gtr")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    import json
    assert len(json.loads(proc.stdout)) == 1


def test_usage_errors_exit_2():
    for args in ([], ["frobnicate"], ["report"], ["dump"], ["run"], ["report", "--bogus", "x"]):
        proc = subprocess.run([GILTRACE, *args], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2, args


def test_corrupted_stacks_read_what_is_there(python, tmp_path, monkeypatch):
    """A trace dense with stacks (stacks=all: every wrapped C-API call), its
    stack records among the bytes flipped: never a crash, symbolising
    included."""
    monkeypatch.setenv("GILTRACE_OPTIONS", "stacks=all:stack_depth=64")
    script = write_script(tmp_path, "import threading, time\n"
                          "def loop():\n"
                          "    for _ in range(300): time.sleep(0)\n"
                          "ts = [threading.Thread(target=loop) for _ in range(3)]\n"
                          "[t.start() for t in ts]; [t.join() for t in ts]\n")
    proc, trace = giltrace_run(python, script, tmp_path)
    assert proc.returncode == 0, proc.stderr
    real = open(trace, "rb").read()
    assert "stack=" in run_tool("dump", trace).stdout
    for seed in range(3):
        assert_every_reader_survives(tmp_path, flip_bytes(real, seed, 500))


def test_a_sparse_tail_is_not_read(tmp_path, real_trace):
    """A trace in a 3 GiB sparse file (a preallocated tail, or a copy that
    kept the size): only what the header says was handed out is read, so it
    reads in a memory limit far below the file's size."""
    import json
    import resource
    path = tmp_path / "sparse.gtr"
    path.write_bytes(real_trace)
    os.truncate(path, 3 << 30)

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))

    proc = subprocess.run([GILTRACE, "report", "--json", str(path)], capture_output=True, text=True, timeout=60,
                          preexec_fn=limit)
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "plain.gtr").write_bytes(real_trace)
    plain = json.loads(subprocess.run([GILTRACE, "report", "--json", str(tmp_path / "plain.gtr")],
                                      capture_output=True, text=True, timeout=60).stdout)
    assert json.loads(proc.stdout)["events"] == plain["events"] > 0
