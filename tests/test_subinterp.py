"""Subinterpreters must not give a false freed-tstate-use (issue 10, item 10).

CPython 3.13's import_run_extension() deletes a temporary thread state of
the main interpreter and _PyThreadState_NewBound() (no wrapper sees it)
callocs the next one at the same address, on the same thread, for each
single-phase module a subinterpreter imports.  The shim sees that
allocation (shim/wrap-alloc.c) and records it as tstate-reuse; the
detector starts a new thread-state life there.  The real errors stay
errors: tests/test_findings.py (use_after_delete, embed_reinit stale) and
the hand-made traces below, where nothing reallocated the block.
"""
import ctypes
import json
import os
import re
import subprocess

import pytest

from helpers import GILTRACE, ROOT, assert_recorded, dump, report

FORMAT_HEADER = os.path.join(ROOT, "include", "trace-format.h")


def check_json(trace):
    proc = subprocess.run([GILTRACE, "check", "--json", trace], capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    (result,) = json.loads(proc.stdout)
    assert result["usable"], result
    return result, proc.returncode


def errors(result):
    return [f for f in result["findings"] if f["severity"] == "error"]


def has_module(python, name):
    return subprocess.run([python, "-c", f"import {name}"], capture_output=True).returncode == 0


def skip_without_own_gil(python):
    if not (has_module(python, "_interpreters") or has_module(python, "_xxsubinterpreters")) or \
            subprocess.run([python, "-c", "import sys; sys.exit(sys.version_info < (3, 12))"]).returncode:
        pytest.skip(f"{python}: no subinterpreter with its own GIL before 3.12")


def traced(python, code, tmp_path, name):
    trace = str(tmp_path / f"{name}.gtr")
    proc = subprocess.run([GILTRACE, "run", "-o", trace, "--", python, "-c", code], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "done" in proc.stdout, proc.stdout + proc.stderr
    return trace


def assert_no_error_and_reuse_explains(python, trace):
    result, status = check_json(trace)
    assert errors(result) == [] and status == 0, result["findings"]
    assert_recorded(report(trace))
    # Where a thread state was freed and a thread passed that address to the
    # C-API again afterwards, the trace must show its reallocation between
    # the two: that is the evidence the detector relied on.
    freed, reused, explained, holders = {}, set(), 0, set()
    for ts, tid, name, details in dump(trace):
        fields = dict(d.split("=", 1) for d in details if "=" in d)
        if name == "gil-acquire":
            holders.add(fields["tstate"])
        elif name == "tstate-free":
            freed[fields["tstate"]] = ts
            reused.discard(fields["tstate"])
        elif name == "tstate-reuse":
            assert int(fields["size"]) > 0
            reused.add(fields["tstate"])
        elif name == "capi-call" and fields.get("subject") in freed and fields["fn"] == "PyThreadState_Swap":
            assert fields["subject"] in reused, f"Swap({fields['subject']}) at {ts} with no reuse since its free"
            explained += 1
    # the subinterpreters' thread states took the GIL: no error means something
    assert len(holders) >= 2, holders
    if "/3.13." in python:
        assert explained > 0, "3.13 makes subinterpreter import thread states where the last one was freed"


SUBINTERP_WORK = ("import threading, array, math\n"
                  "t = threading.Thread(target=sum, args=(range(1000),)); t.start(); t.join()\n")
ISOLATED_WORK = "import array, math, json\njson.dumps([math.pi])\n"


def test_create_and_destroy_subinterpreters(python, tmp_path):
    """The issue's minimal case, with some work inside, twice."""
    work = SUBINTERP_WORK
    if has_module(python, "_interpreters"):
        code = ("import _interpreters as I\n"
                "for _ in range(2):\n"
                "    i = I.create(); I.exec(i, {work!r}); I.destroy(i)\n"
                "print('done')\n")
    elif has_module(python, "_xxsubinterpreters"):
        code = ("import _xxsubinterpreters as I\n"
                "for _ in range(2):\n"
                "    i = I.create(); I.run_string(i, {work!r}); I.destroy(i)\n"
                "print('done')\n")
        work = ISOLATED_WORK  # 3.8-3.12: no threads in these (isolated) interpreters
    else:
        pytest.skip(f"{python} has neither _interpreters nor _xxsubinterpreters")
    trace = traced(python, code.format(work=work), tmp_path, "create")
    assert_no_error_and_reuse_explains(python, trace)


def test_usable_sizes_that_vary_between_lives(python, tmp_path, monkeypatch):
    """glibc may give one 336-byte calloc 344 usable bytes and the next, at
    the same address, 360: a reuse all the same.  A preloaded allocator
    (tests/support/usable_size_jitter.c) makes every block's usable size
    alternate so between lives."""
    jitter = str(tmp_path / "jitter.so")
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", jitter,
                    os.path.join(ROOT, "tests", "support", "usable_size_jitter.c"), "-ldl"], check=True)
    monkeypatch.setenv("LD_PRELOAD", jitter)  # giltrace run puts the shim first
    test_create_and_destroy_subinterpreters(python, tmp_path)


def test_testcapi_run_in_subinterp(python, tmp_path):
    if not has_module(python, "_testcapi"):
        pytest.skip(f"{python} has no _testcapi (Debian: libpython3.x-testsuite)")
    code = ("import _testcapi\n"
            "for _ in range(3):\n"
            "    assert _testcapi.run_in_subinterp({work!r}) == 0\n"
            "print('done')\n")
    trace = traced(python, code.format(work=SUBINTERP_WORK), tmp_path, "capi")
    assert_no_error_and_reuse_explains(python, trace)


# ---- the detector on hand-made traces ---------------------------------------------

def format_enum(name):
    """The values of `enum name` in include/trace-format.h."""
    text = open(FORMAT_HEADER).read()
    body = re.search(r"enum %s \{(.*?)\};" % name, text, re.S).group(1)
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    values, next_value = {}, 0
    for item in (x.strip() for x in body.split(",")):
        if not item:
            continue
        key, _, value = (p.strip() for p in item.partition("="))
        next_value = int(value, 0) if value else next_value
        values[key] = next_value
        next_value += 1
    return values


EV = format_enum("gtr_event_type")
CAPI = format_enum("gtr_capi")
PAYLOAD_WORDS = {EV["GTR_EV_GIL_ACQUIRE"]: 2, EV["GTR_EV_CAPI_CALL"]: 2, EV["GTR_EV_CAPI_RETURN"]: 1,
                 EV["GTR_EV_TSTATE_FREE"]: 1, EV["GTR_EV_TSTATE_REUSE"]: 2}


class Header(ctypes.Structure):
    _fields_ = [("magic", ctypes.c_char * 8), ("version_major", ctypes.c_uint16),
                ("version_minor", ctypes.c_uint16), ("header_size", ctypes.c_uint32),
                ("flags", ctypes.c_uint32), ("chunk_size", ctypes.c_uint32),
                ("chunk_area_offset", ctypes.c_uint64), ("meta_capacity", ctypes.c_uint64),
                ("meta_used", ctypes.c_uint64), ("chunks_allocated", ctypes.c_uint64),
                ("ring_chunks", ctypes.c_uint32), ("pid", ctypes.c_int32), ("ppid", ctypes.c_int32),
                ("reserved0", ctypes.c_uint32), ("start_realtime_ns", ctypes.c_uint64),
                ("start", ctypes.c_uint64 * 2), ("calib", ctypes.c_uint64 * 2), ("end", ctypes.c_uint64 * 2)]


def write_trace(path, events):
    """One thread (tid 100), events (type name, arg, clock ns, payload...)."""
    chunk = bytearray(4096)
    used = 64
    for name, arg, clock, *payload in events:
        ev = EV["GTR_EV_" + name]
        words = [ev | arg << 8 | clock << 16] + list(payload)
        assert len(payload) == PAYLOAD_WORDS.get(ev, 0), name
        for w in words:
            chunk[used:used + 8] = w.to_bytes(8, "little")
            used += 8
    # struct gtr_chunk_header: magic, used, thread_serial, tid, seq, reserved, first_clock
    chunk[0:32] = (0x4b435447).to_bytes(4, "little") + (used - 64).to_bytes(4, "little") + \
        (1).to_bytes(4, "little") + (100).to_bytes(4, "little") + bytes(8) + events[0][2].to_bytes(8, "little")
    h = Header(magic=b"GILTRACE", version_major=3, version_minor=1, header_size=4096, flags=1,
               chunk_size=4096, chunk_area_offset=8192, meta_capacity=4096, chunks_allocated=1, pid=100)
    h.start[:] = [1000, 1000]
    h.end[:] = [events[-1][2] + 1000, events[-1][2] + 1000]
    with open(path, "wb") as f:
        f.write(bytes(h).ljust(4096, b"\0") + bytes(4096) + bytes(chunk))


OLD, NEW = 0x7f0000001000, 0x55550000b00  # the main tstate; the one freed and made again
SWAP, DELETE = CAPI["GTR_CAPI_PyThreadState_Swap"], CAPI["GTR_CAPI_PyThreadState_Delete"]


def import_cycle(t, reuse):
    """import_run_extension() on 3.13: switch to a new thread state, delete it."""
    return ([("TSTATE_REUSE", 0, t, NEW, 336)] if reuse else []) + [
        ("CAPI_CALL", SWAP, t + 10, NEW, 0),
        ("GIL_RELEASE", 0, t + 20), ("GIL_TAKE_BEGIN", 0, t + 30), ("GIL_ACQUIRE", 0, t + 40, NEW, 2),
        ("CAPI_RETURN", SWAP, t + 50, OLD),
        ("CAPI_CALL", SWAP, t + 60, OLD, 0),
        ("GIL_RELEASE", 0, t + 70), ("GIL_TAKE_BEGIN", 0, t + 80), ("GIL_ACQUIRE", 0, t + 90, OLD, 3),
        ("CAPI_RETURN", SWAP, t + 100, NEW),
        ("CAPI_CALL", DELETE, t + 110, NEW, 0), ("TSTATE_FREE", 0, t + 120, NEW)]


def hand_made(tmp_path, middle):
    events = [("GIL_TAKE_BEGIN", 0, 1000), ("GIL_ACQUIRE", 0, 1010, OLD, 1)] + middle + \
        [("THREAD_EXIT", 3 | 0x80, 90000)]
    path = str(tmp_path / "hand.gtr")
    write_trace(path, events)
    return check_json(path)[0]


def test_reuse_starts_a_new_thread_state_life(tmp_path):
    result = hand_made(tmp_path, import_cycle(2000, False) + import_cycle(3000, True) + import_cycle(4000, True))
    assert result["findings"] == []


def test_without_reuse_the_same_sequence_is_an_error(tmp_path):
    """No allocation seen between the free and the next Swap: the thread
    handed the freed thread state back (what the old traces of 3.13 showed)."""
    result = hand_made(tmp_path, import_cycle(2000, False) + import_cycle(3000, False))
    (f,) = errors(result)
    assert f["id"] == "freed-tstate-use" and f["call"]["function"] == "PyThreadState_Swap"
    assert f["tstate"]["freed"]


def test_a_reused_block_freed_again_is_freed(tmp_path):
    """A reuse ends only the life it follows: freed again, the address is
    freed again, and a use is an error."""
    result = hand_made(tmp_path, import_cycle(2000, False) + import_cycle(3000, True) +
                       [("CAPI_CALL", SWAP, 5000, NEW, 0)])
    (f,) = errors(result)
    assert f["id"] == "freed-tstate-use"
    assert f["tstate"]["freed_at_ns"] == 3120 - 1000


BUFFER_LOOP = r"""
import ctypes, sys
api, libc = ctypes.pythonapi, ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p; libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.malloc_usable_size.restype = ctypes.c_size_t; libc.malloc_usable_size.argtypes = [ctypes.c_void_p]
api.PyInterpreterState_Head.restype = ctypes.c_void_p
api.PyThreadState_New.restype = ctypes.c_void_p; api.PyThreadState_New.argtypes = [ctypes.c_void_p]
api.PyThreadState_Clear.argtypes = [ctypes.c_void_p]; api.PyThreadState_Delete.argtypes = [ctypes.c_void_p]
ts = api.PyThreadState_New(api.PyInterpreterState_Head())
size = libc.malloc_usable_size(ts)
api.PyThreadState_Clear(ts); api.PyThreadState_Delete(ts)
same = 0
for _ in range(2000):
    p = libc.malloc(size)
    same += p == ts
    libc.free(p)
print(hex(ts), same, "done")
"""


def test_a_buffer_freed_in_a_loop_stops_being_watched(python, tmp_path):
    """A block of a thread state's size malloc'd and freed in a loop where a
    thread state was: a few reuses and frees, then no more (not two events
    and a stack per iteration)."""
    if subprocess.run([python, "-c", "import sys; sys.exit(hasattr(sys, 'gettotalrefcount'))"]).returncode:
        pytest.skip(f"{python} is a debug build: its thread states are not malloc's blocks")
    trace = str(tmp_path / "loop.gtr")
    proc = subprocess.run([GILTRACE, "run", "-o", trace, "--", python, "-c", BUFFER_LOOP], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0 and "done" in proc.stdout, proc.stdout + proc.stderr
    ts, same, _ = proc.stdout.split()
    assert int(same) > 1000, "malloc should hand the freed block back at once"
    events = dump(trace)
    frees = [e for e in events if e[2] == "tstate-free" and f"tstate={ts}" in e[3]]
    reuses = [e for e in events if e[2] == "tstate-reuse" and f"tstate={ts}" in e[3]]
    # the build from the trace's header, not "no frees": a trace without events must fail, not skip
    if not report(trace)["interpreter"]["shared"]:
        pytest.skip(f"{python}: the wrappers do not see ctypes' C-API calls (static interpreter)")
    assert 1 <= len(reuses) <= 3 and len(frees) == len(reuses) + 1, (len(reuses), len(frees))
    result, status = check_json(trace)
    assert status == 0 and errors(result) == []


# A thread runs code in a subinterpreter with its own GIL (3.12+: isolated
# config) while the main thread runs in the main interpreter.
OWN_GIL = """\
import threading
try:
    import _interpreters as I          # 3.13: create() is isolated, its own GIL
    make, run = I.create, I.run_string
except ImportError:
    import _xxsubinterpreters as I     # 3.12
    make, run = (lambda: I.create(isolated=True)), I.run_string
interp = make()
t = threading.Thread(target=run, args=(interp, "x = sum(range(3_000_000))"))
t.start()
sum(range(3_000_000))
t.join()
I.destroy(interp)
print("done")
"""


def test_subinterpreter_with_its_own_gil(python, tmp_path):
    """Each GIL is recognised, with its own statistics that add up; the
    threads table says which GILs each thread took; no finding."""
    skip_without_own_gil(python)
    trace = traced(python, OWN_GIL, tmp_path, "own-gil")
    rep = report(trace)
    assert rep["model_errors"] == []
    gils = {g["index"]: g for g in rep["gils"]}
    assert len(gils) == 2 and sum(g["main"] for g in gils.values()) == 1, rep["gils"]
    (own,) = [i for i, g in gils.items() if not g["main"]]
    for g in gils.values():
        assert g["acquisitions"] > 0
        assert g["held_ns"] + g["idle_ns"] + g["lost_ns"] == rep["wall_ns"]
    worker = [t for t in rep["threads"] if not t["main"]]
    assert len(worker) == 1 and own in worker[0]["gils"], rep["threads"]
    # the worker's time in the subinterpreter is on its own GIL's account
    assert gils[own]["held_ns"] > 0
    text = subprocess.run([GILTRACE, "report", trace], capture_output=True, text=True, timeout=60).stdout
    assert " gils " in text.splitlines()[[i for i, line in enumerate(text.splitlines()) if "tid " in line][0]]
    # the timeline's rows and the export's threads say which GILs each took
    timeline = subprocess.run([GILTRACE, "timeline", "--around", "whole", trace], capture_output=True, text=True,
                              timeout=60).stdout
    # (the worker is named by threading: its name, cut to fit, then its tid)
    assert re.search(rf"^GIL 0,{own}: \S.* \({worker[0]['tid']}\) ", timeline, re.M), timeline
    export = tmp_path / "own-gil.json"
    subprocess.run([GILTRACE, "export", "-o", str(export), trace], check=True, capture_output=True, timeout=60)
    names = [e["args"]["name"] for e in json.loads(export.read_text())["traceEvents"]
             if e.get("ph") == "M" and e.get("name") == "thread_name"]
    assert f"GIL 0,{own}: {worker[0]['name']} ({worker[0]['tid']})" in names, names
    result, status = check_json(trace)
    assert status == 0 and result["findings"] == [], result["findings"]


# The main thread runs code in a subinterpreter with its own GIL that starts
# a thread of its own (it takes only that GIL); then the main interpreter
# starts one more thread, later than that one.  (3.12.1 hangs in destroy()
# when another thread of the main interpreter ran the subinterpreter's
# code, untraced too: the main thread runs it here.)
GROUPS = """\
import threading
try:
    import _interpreters as I
    make, run = I.create, I.run_string
except ImportError:
    import _xxsubinterpreters as I
    make, run = (lambda: I.create(isolated=True)), I.run_string
interp = make()
run(interp, '''
import threading
t = threading.Thread(target=sum, args=(range(2_000_000),))
t.start()
t.join()
''')
late = threading.Thread(target=sum, args=(range(200_000),))
late.start()
late.join()
I.destroy(interp)
print("done")
"""


def test_threads_grouped_per_interpreter(python, tmp_path):
    """Where a process has several GILs, the report's rows, the timeline's
    lanes and the export's order group the threads by the GIL they are
    shown under (the main interpreter's first), not by start alone."""
    skip_without_own_gil(python)
    trace = traced(python, GROUPS, tmp_path, "groups")
    rep = report(trace)
    assert rep["model_errors"] == []
    (own,) = [g["index"] for g in rep["gils"] if not g["main"]]
    threads = rep["threads"]
    assert len(threads) == 3, threads
    main, late, sub = threads     # grouped: GIL 0's threads, then the subinterpreter's
    assert main["main"] and main["gils"] == [0, own] and late["gils"] == [0] and sub["gils"] == [own], threads
    assert sub["first_ns"] < late["first_ns"]  # by start alone, sub would come before late
    timeline = subprocess.run([GILTRACE, "timeline", "--around", "whole", trace], capture_output=True, text=True,
                              timeout=60).stdout.splitlines()

    def row(tid):
        return [i for i, line in enumerate(timeline) if f"{tid}" in line and line.startswith("GIL ")][0]

    main_heading = timeline.index("GIL 0, the main interpreter's:")
    own_heading = timeline.index(f"GIL {own}, a subinterpreter's own:")
    assert main_heading < row(main["tid"]) < row(late["tid"]) < own_heading < row(sub["tid"])
    export = tmp_path / "groups.json"
    subprocess.run([GILTRACE, "export", "-o", str(export), trace], check=True, capture_output=True, timeout=60)
    rank = {e["tid"]: e["args"]["sort_index"] for e in json.loads(export.read_text())["traceEvents"]
            if e.get("ph") == "M" and e.get("name") == "thread_sort_index"}
    assert [rank[t["tid"]] for t in threads] == [0, 1, 2], rank
