"""Evidence the tools could not read is never called clean, and events a
trace lost are never made into statistics (issue 10, items 11 and 12).

Item 11: `check` on a partial copy of a trace, a stub, a killed process's
trace or a folder without traces must not exit 0; it says truncated and why,
in text and JSON, and still reports the findings it could read.
Item 12: a ring trace keeps each thread's newest events only; a release
before the lost stretch and the first acquisition after it are no handoff.

GILTRACE_EVIDENCE_BIN runs these tests against another build of giltrace
(the code before the fix, to see them fail there).
"""
import json
import os
import signal
import struct
import subprocess

import pytest

from helpers import (GILTRACE, SCENARIOS, SHIM, assert_model_sound, assert_recorded, dump, giltrace_run, report,
                     write_script)

BIN = os.environ.get("GILTRACE_EVIDENCE_BIN", GILTRACE)
DEBIAN = "/usr/bin/python3.11"

# header fields (include/trace-format.h)
FLAGS_AT, CHUNK_SIZE_AT, CHUNK_AREA_AT, CHUNKS_ALLOCATED_AT = 16, 20, 24, 48
FLAG_CLOSED = 1


def tool(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=120)


def check_json(*paths, args=()):
    proc = tool("check", "--json", *args, *map(str, paths))
    return json.loads(proc.stdout), proc.returncode


def need(python):
    if not os.access(python, os.X_OK):
        pytest.skip(f"{python} not installed")


# ---- item 11: incomplete evidence --------------------------------------------------

THREADS = """
import threading
def work():
    for _ in range(20000):
        sum(range(50))
ts = [threading.Thread(target=work) for _ in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
"""


@pytest.fixture(scope="module")
def whole_trace(tmp_path_factory):
    """A complete trace of several chunks (Debian's python3.11) and its bytes."""
    need(DEBIAN)
    tmp = tmp_path_factory.mktemp("whole")
    proc, trace = giltrace_run(DEBIAN, write_script(tmp, THREADS), tmp)
    assert proc.returncode == 0, proc.stderr
    data = open(trace, "rb").read()
    assert struct.unpack_from("<Q", data, CHUNKS_ALLOCATED_AT)[0] >= 3, "too few chunks to cut"
    return trace, data


def cut(data, chunks):
    """The first `chunks` chunks of the trace: a partial copy."""
    area = struct.unpack_from("<Q", data, CHUNK_AREA_AT)[0]
    size = struct.unpack_from("<I", data, CHUNK_SIZE_AT)[0]
    return data[:area + chunks * size]


def test_complete_trace_is_clean(whole_trace):
    results, status = check_json(whole_trace[0])
    assert status == 0
    assert results[0]["verdict"] == "clean" and results[0]["truncated"] is False
    assert results[0]["truncated_reasons"] == []


def test_partial_copy_is_not_clean(tmp_path, whole_trace):
    data = whole_trace[1]
    allocated = struct.unpack_from("<Q", data, CHUNKS_ALLOCATED_AT)[0]
    part = tmp_path / "part.gtr"
    part.write_bytes(cut(data, allocated // 3))
    (result,), status = check_json(part)
    assert status == 2
    assert result["usable"] and result["verdict"] == "incomplete"
    assert result["truncated"] is True and result["truncated_reasons"] == ["cut_short"]
    assert f"{allocated // 3} of its {allocated} chunks" in result["truncated_why"]
    text = tool("check", str(part))
    assert text.returncode == 2
    assert "TRUNCATED, not clean: the file is cut short" in text.stdout
    # even when quiet, and when only errors are asked for: it is not clean
    quiet = tool("check", "--quiet-if-clean", "--min-severity", "error", str(part))
    assert quiet.returncode == 2 and "TRUNCATED" in quiet.stdout
    # report says so too, and its model still adds up
    rep = json.loads(tool("report", "--json", str(part)).stdout)
    assert rep["truncated"] and rep["truncated_reasons"] == ["cut_short"]
    assert_model_sound(rep)
    assert "TRUNCATED: the file is cut short" in tool("report", str(part)).stdout


def test_stub_is_not_clean(tmp_path, whole_trace):
    stub = tmp_path / "stub.gtr"
    stub.write_bytes(whole_trace[1][:5000])
    (result,), status = check_json(stub)
    assert status == 2 and result["truncated"] and "cut_short" in result["truncated_reasons"]


def test_folder_without_traces(tmp_path, whole_trace):
    empty = tmp_path / "artifacts"
    empty.mkdir()
    (empty / "notes.txt").write_text("no traces here")
    proc = tool("check", str(empty))
    assert proc.returncode == 2
    assert f"no *.gtr traces under '{empty}': nothing to read there (point giltrace at the folder" in proc.stderr
    assert "output=" in proc.stderr  # what to do
    # a good trace elsewhere does not make up for a folder that held none
    proc = tool("check", whole_trace[0], str(empty))
    assert proc.returncode == 2


FOREVER = """
import threading, time
def work():
    while True:
        sum(range(100)); time.sleep(0)
for _ in range(2):
    threading.Thread(target=work, daemon=True).start()
time.sleep(0.2)
print("ready", flush=True)
time.sleep(60)
"""


def test_killed_process_is_evidence_but_not_clean(tmp_path):
    """SIGKILL: the trace reads, it is not clean (2), and it says why."""
    need(DEBIAN)
    trace = tmp_path / "killed.gtr"
    env = dict(os.environ, LD_PRELOAD=SHIM, GILTRACE_OPTIONS=f"output={trace}")
    proc = subprocess.Popen([DEBIAN, write_script(tmp_path, FOREVER)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline() == "ready\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    (result,), status = check_json(trace)
    assert status == 2 and result["verdict"] == "incomplete"
    assert result["truncated_reasons"] == ["not_closed"]
    # evidence: what the threads did until the kill is there
    assert_recorded(report(str(trace)), workers=2, finalization=False, ended=False)
    quiet = tool("check", "--quiet-if-clean", "--min-severity", "error", str(trace))
    assert quiet.returncode == 2
    assert "TRUNCATED, not clean: the process did not exit normally" in quiet.stdout
    assert len(quiet.stdout.splitlines()) == 1  # one line: what the shim would print at exit


def test_killed_process_still_reports_its_findings(python, extension, tmp_path):
    """The finding of a trace whose process died is reported (exit 1), with
    the trace called truncated: a SIGKILLed trace is often the one that
    matters.  (The scenario's trace with its CLOSED flag cleared: what a
    kill leaves.)"""
    trace = tmp_path / "t.gtr"
    env = dict(os.environ, PYTHONPATH=extension)
    proc = subprocess.run([GILTRACE, "run", "-o", str(trace), "--", python,
                           os.path.join(SCENARIOS, "exit_holding_gil.py")],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    data = bytearray(trace.read_bytes())
    struct.pack_into("<I", data, FLAGS_AT, struct.unpack_from("<I", data, FLAGS_AT)[0] & ~FLAG_CLOSED)
    killed = tmp_path / "killed.gtr"
    killed.write_bytes(bytes(data))
    (result,), status = check_json(killed)
    assert status == 1
    assert result["truncated"] and result["truncated_reasons"] == ["not_closed"]
    assert any(f["id"] == "exit-holding-gil" for f in result["findings"])
    text = tool("check", "--quiet-if-clean", "--min-severity", "error", str(killed)).stdout
    assert "giltrace ERROR: exit-holding-gil" in text and "TRUNCATED" in text


def test_min_severity(tmp_path):
    """Notes only (finalization ended daemon threads): with
    --min-severity error nothing is shown, and quiet means silent; the exit
    status is the same either way."""
    need(DEBIAN)
    # daemon threads doing I/O at exit: finalization ends some of them as
    # they take the GIL, which is notes, in most runs but not in every one
    # (the finalizing thread may keep the GIL to the end); up to 5 tries
    for attempt in range(5):
        run_dir = tmp_path / str(attempt)
        run_dir.mkdir()
        proc, trace = giltrace_run(DEBIAN, os.path.join(SCENARIOS, "daemon_io.py"), run_dir)
        assert proc.returncode == 0, proc.stderr
        (result,), status = check_json(trace)
        assert status == 0 and result["errors"] == 0
        if result["notes"] > 0:
            break
    assert result["notes"] > 0, "5 runs of daemon_io.py gave no note"
    notes = tool("check", "--quiet-if-clean", trace)
    assert notes.returncode == 0 and "giltrace note: exit-in-take-gil" in notes.stdout
    quiet = tool("check", "--quiet-if-clean", "--min-severity", "error", trace)
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
    loud = tool("check", "--min-severity", "error", trace)
    assert loud.returncode == 0 and "(notes not shown)" in loud.stdout and "giltrace note" not in loud.stdout
    (filtered,), status = check_json(trace, args=("--min-severity", "error"))
    assert status == 0 and filtered["findings"] == [] and filtered["notes"] == result["notes"]
    assert tool("check", "--min-severity", "error", "--min-severity", "note", trace).returncode == 0
    bad = tool("check", "--min-severity", "warning", trace)
    assert bad.returncode == 2 and "'warning' is not a severity" in bad.stderr


# ---- item 12: no statistics across lost events ----------------------------------------------

STORM = """
import sys, threading, time
def early():
    for _ in range(50):
        time.sleep(0)
def worker():
    for _ in range(int(sys.argv[1])):
        time.sleep(0)
        sum(range(20))
e = threading.Thread(target=early); e.start(); e.join()
ts = [threading.Thread(target=worker) for _ in range(3)]
[t.start() for t in ts]; [t.join() for t in ts]
"""


def gil_events(trace):
    """(ns, tid, kind, switch or None) of GIL 0's acquisitions and releases."""
    out = []
    for ts, tid, name, details in dump(trace):
        if name in ("gil-acquire", "gil-release") and "gil=0" in details:
            switch = next((int(d[7:]) for d in details if d.startswith("switch=")), None)
            out.append((round(ts * 1e9), tid, name, switch))
    return out


def pairings(events, orphan_releases):
    """Every (release, acquisition by another thread) the GIL's kept events
    pair, with the acquisition's switch step from the one before (None for
    the first).  A release by a thread not known to hold the GIL (its
    acquisition lost) counts when orphan_releases (as the model does,
    when nobody is known to hold it), else it is ignored (as the model
    before the fix did)."""
    pairs, holder, last_release, prev_acq = [], None, None, None
    for ev in events:
        ns, tid, kind, switch = ev
        if kind == "gil-release":
            if holder == tid or (orphan_releases and holder is None):
                last_release = ev
            if holder == tid:
                holder = None
        else:
            if last_release and last_release[1] != tid:
                pairs.append((last_release, ev, None if prev_acq is None else switch - prev_acq[3], prev_acq))
            holder, last_release, prev_acq = tid, None, ev
    return pairs


def overlaps(ranges, tid, after, before):
    return any(r["tid"] == int(tid) and r["after_ns"] < before and after < (r["before_ns"] or float("inf"))
               for r in ranges)


def test_ring_trace_invents_no_handoff(python, tmp_path):
    """Worker threads wrap their 1 MiB rings; the main thread's last release
    before them stays in the trace.  Paired with the first acquisition kept
    after the lost stretch (the switch number jumps), it made a handoff as
    long as the lost stretch.  Now a handoff counts only where the two
    acquisitions are at most one switch apart and neither thread lost
    events in between; the time is lost, not idle; the report says how
    much was lost."""
    script = write_script(tmp_path, STORM)
    proc, trace = giltrace_run(python, script, tmp_path, "--mode", "ring", "--ring-size", "1", extra=("40000",),
                               timeout=300)
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(tool("report", "--json", trace).stdout)
    assert_model_sound(rep)
    lost = rep["lost"]
    assert lost["threads"] >= 3 and lost["chunks"] > 0, "the rings did not wrap: the test shows nothing"
    assert lost["gil_acquisitions_missing"] > 0 and lost["gil_gaps"] > 0
    (gil,) = rep["gils"]
    assert gil["lost_ns"] > 0 and gil["lost_ns"] == lost["gil_lost_ns"]
    assert any(r["kind"] == "leading" for r in lost["ranges"])

    events = gil_events(trace)
    # the bug's shape is in this trace: the old pairing crosses switch jumps
    assert any(step is not None and step > 1 for _, _, step, _ in pairings(events, orphan_releases=False))
    # an independent replay of the rule: at most one switch apart, and no
    # loss in the releasing or acquiring threads between the two
    candidates = pairings(events, orphan_releases=True)
    sound = [acq[0] - rel[0] for rel, acq, step, prev in candidates
             if step is not None and step <= 1
             and not overlaps(lost["ranges"], acq[1], rel[0], acq[0])
             and not overlaps(lost["ranges"], prev[1], rel[0], acq[0])]
    handoffs = rep["handoffs"]
    assert handoffs["count"] == len(sound) > 0
    assert handoffs["count"] + lost["handoffs_not_counted"] == len(candidates)
    assert abs(handoffs["latency_ns"]["max"] - max(sound)) <= 2
    # the pictures draw the same handoffs
    export = json.loads(tool("export", "-o", "-", trace).stdout)
    assert sum(1 for e in export["traceEvents"] if e.get("ph") == "s") == handoffs["count"]
    text = tool("report", trace).stdout
    assert "GIL events missing in" in text and "are not counted" in text


def test_complete_trace_has_no_gaps(python, tmp_path):
    """The switch numbers of a full trace never skip: no false gap on any
    interpreter (3.8-3.13, debug builds), so nothing is left out."""
    script = write_script(tmp_path, STORM)
    proc, trace = giltrace_run(python, script, tmp_path, extra=("3000",), timeout=300)
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(tool("report", "--json", trace).stdout)
    assert_model_sound(rep)
    lost = rep["lost"]
    assert lost == dict(lost, threads=0, chunks=0, gil_acquisitions_missing=0, gil_gaps=0, gil_lost_ns=0,
                        handoffs_not_counted=0, ranges=[])
    events = gil_events(trace)
    acquisitions = [e for e in events if e[2] == "gil-acquire"]
    assert all(b[3] - a[3] in (0, 1) for a, b in zip(acquisitions, acquisitions[1:]))
    assert rep["handoffs"]["count"] == len(pairings(events, orphan_releases=False)) > 0


@pytest.mark.parametrize("version, line", [
    ((3, 7, 18), "python 3.7.18 is older than the versions giltrace supports (3.8-3.15)"),
    ((3, 16, 0), "python 3.16.0 is newer than the versions giltrace supports (3.8-3.15)"),
    ((3, 14, 0), "python 3.14.0 is supported from CPython's source alone (3.14-3.15"),
])
def test_an_interpreter_outside_the_range_is_said(simple_trace, tmp_path, version, line):
    """A trace of a 3.7 or a 3.16 (the header's version, as the shim wrote
    it) says in one line, in check and in the report, that its findings
    may be wrong or missing; one of a 3.14, supported from the source
    alone, says that; a tested version says nothing."""
    text = ".".join(map(str, version))
    trace = tmp_path / "other.gtr"
    data = bytearray(simple_trace.read_bytes())
    major, minor, micro = version
    struct.pack_into("<I", data, 128, major << 24 | minor << 16 | micro << 8 | 0xF0)  # py_version_hex
    data[136:136 + 128] = (text + " (patched)").encode().ljust(128, b"\0")          # py_version
    trace.write_bytes(bytes(data))
    out = tool("check", str(trace)).stdout
    assert line in out and "findings may be wrong or missing" in out, out
    assert any(line in note for note in report(str(trace))["notes"])
    assert line not in tool("check", str(simple_trace)).stdout
    assert not any("versions giltrace supports" in note for note in report(str(simple_trace))["notes"])
