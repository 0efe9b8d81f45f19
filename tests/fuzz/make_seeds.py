#!/usr/bin/python3
"""Make the fuzzer's seed corpus (tests/fuzz/seeds/) from real traces.

Each scenario below runs a small python program under `build/giltrace run`
with one of the interpreters on this machine (skipped, with a line, when
absent) and keeps a compacted copy of its trace: the same events, threads,
stacks, modules and GILs, re-chunked into 4 KiB chunks with the metadata
log cut to what is used, so that a trace of a few thousand
events takes a few KB instead of hundreds (the fuzzer mutates every byte it
is given: it should not spend them on zero padding).  The copy is checked:
`giltrace report --json` must give the same threads, GILs and findings
as the original.  The interpreter's start-up, some 400 GIL cycles of the
main thread before any other thread runs, is thinned to the first and
last 10 cycles of each run of them.

Module paths are moved under /nonexistent/ (their base names kept) and
their build-ids inverted (bytes xor 0xff): the readers then take the "no
file for this module" path of the symboliser instead of loading the
interpreter's DWARF (found by path or in /usr/lib/debug/.build-id) for
every input, which made one execution take seconds instead of
milliseconds.  Symbolising real files is covered by tests/test_hostile.py
and tests/test_stacks.py.

usage: tests/fuzz/make_seeds.py [--keep-going] [SCENARIO...]
"""
import glob
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import scenario_build  # noqa: E402

GILTRACE = os.path.join(ROOT, "build", "giltrace")
SEEDS = os.path.join(HERE, "seeds")
SCENARIOS = os.path.join(ROOT, "tests", "scenarios")

# ---- the trace format (docs/trace-format.md) --------------------------------

CHUNK_SIZE = 4096             # the smallest chunk the format allows
CHUNK_HEADER = 64
CHUNK_MAGIC = 0x4B435447
META_MODULE = 1
MASK48 = (1 << 48) - 1


def event_table():
    """{name: type} and {type: payload words} from the format header, the
    one definition of the events (a new type must not end the parse)."""
    with open(os.path.join(ROOT, "include", "trace-format.h")) as f:
        text = f.read()
    body = re.search(r"enum gtr_event_type \{(.*?)\};", text, re.S).group(1)
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    names = re.findall(r"GTR_EV_(\w+)", body)
    types = {name: i for i, name in enumerate(names)}
    table = re.search(r"gtr_event_payload_words\[GTR_EV_COUNT\] = \{(.*?)\};", text, re.S).group(1)
    words = {types[name]: int(n) for name, n in re.findall(r"\[GTR_EV_(\w+)\] = (\d+)", table)}
    return types, words


EV, PAYLOAD_WORDS = event_table()
EV_TAKE_BEGIN, EV_STACK, EV_CLOCK, EV_COUNT = EV["GIL_TAKE_BEGIN"], EV["STACK"], EV["CLOCK"], EV["COUNT"]
GIL_EVENTS = range(EV["GIL_TAKE_BEGIN"], EV["GIL_FORCED_SWITCH_END"] + 1)
CAPI_EVENTS = (EV["CAPI_CALL"], EV["CAPI_RETURN"])


def units_of(events, first_clock):
    """Split one chunk's events into units, an event and the stack after it
    (which must stay in the same chunk): [(clock to unwrap it from, its
    clock, its type, bytes)]."""
    units, prev, off = [], first_clock, 0
    while off + 8 <= len(events):
        (word,) = struct.unpack_from("<Q", events, off)
        kind, arg = word & 0xFF, (word >> 8) & 0xFF
        if kind == 0 or kind >= EV_COUNT:
            break
        words = arg if kind == EV_STACK else PAYLOAD_WORDS.get(kind, 0)
        end = off + 8 + 8 * words
        if end > len(events):
            break
        piece = events[off:end]
        if kind == EV_STACK and units:
            units[-1] = units[-1][:3] + (units[-1][3] + piece,)
        elif kind == EV_CLOCK:
            (clock,) = struct.unpack_from("<Q", events, off + 8)
            units.append((prev, clock, kind, piece))
            prev = clock
        else:
            clock = prev + (((word >> 16) - prev) & MASK48)
            units.append((prev, clock, kind, piece))
            prev = clock
        off = end
    return units


def boring(unit):
    """A step of a GIL cycle on the main GIL, or a C-API call around it."""
    kind, arg = unit[2], unit[3][1]
    return (kind in GIL_EVENTS and arg == 0) or kind in CAPI_EVENTS


def thin_prologue(units, before, keep):
    """Interpreter start-up takes and releases the GIL some 400 times
    before any other thread runs: of each run of such cycles before
    `before` (clock) that has nothing else in it, keep the first and the
    last `keep` cycles and drop the rest whole (from one gil-take-begin to
    another, so the GIL is free at both ends)."""
    takes = [i for i, u in enumerate(units) if u[2] == EV_TAKE_BEGIN and u[3][1] == 0 and u[1] < before]
    plain = [all(boring(u) for u in units[a:b]) for a, b in zip(takes, takes[1:])]
    drop, k = set(), 0
    while k < len(plain):
        j = k
        while j < len(plain) and plain[j]:
            j += 1
        if j - k > 2 * keep:
            drop.update(range(takes[k + keep], takes[j - keep]))
        k = j + 1
    return [u for i, u in enumerate(units) if i not in drop]


def compact(data, keep_last_chunks=None, prologue=10):
    """The trace `data` with 4 KiB chunks and no unused metadata, start-up
    thinned to `prologue` GIL cycles at each end of a run; with keep_last_chunks,
    only each thread's last N new chunks (a ring that dropped its oldest
    events)."""
    header_size, flags, chunk_size, area, meta_cap, meta_used, allocated = struct.unpack_from("<IIIQQQQ", data, 12)
    # the header stays whole: a reader may require room for every field it
    # knows (format 3.2 added 64 bytes), and the writer's is 4096 bytes
    header = bytearray(data[:header_size])

    meta, off, end = bytearray(), header_size, header_size + meta_used
    while off + 8 <= end:
        kind, size = struct.unpack_from("<HH", data, off)
        if size < 8 or size % 8 or off + size > end:
            break
        record = data[off:off + size]
        if kind == META_MODULE:
            fixed = bytearray(record[:8 + 48])
            for k in range(min(fixed[16], 31)):
                fixed[17 + k] ^= 0xFF
            path = record[8 + 48:].split(b"\0", 1)[0]
            path = b"/nonexistent/" + os.path.basename(path)
            body = fixed[8:] + path + b"\0"
            body += b"\0" * (-(8 + len(body)) % 8)
            record = struct.pack("<HHI", kind, 8 + len(body), 0) + body
        meta += record
        off += size

    threads = {}
    for i in range(allocated):
        at = area + i * chunk_size
        if at + CHUNK_HEADER > len(data):
            break
        magic, used, serial, tid, seq, _, first_clock, pthread_id = struct.unpack_from("<IIIiIIQQ", data, at)
        if magic != CHUNK_MAGIC:
            continue
        events = data[at + CHUNK_HEADER:at + CHUNK_HEADER + min(used, chunk_size - CHUNK_HEADER)]
        threads.setdefault(serial, []).append((seq, tid, pthread_id, first_clock, events))

    units = {}
    for serial, old in threads.items():
        old.sort()
        units[serial] = [u for _, _, _, first_clock, events in old for u in units_of(events, first_clock)]
    if units and prologue is not None:
        first = min(units)
        others = [u[0][1] for serial, u in units.items() if serial != first and u]
        units[first] = thin_prologue(units[first], min(others, default=1 << 64), prologue)

    room = CHUNK_SIZE - CHUNK_HEADER
    chunks = []
    for serial, old in sorted(threads.items()):
        base_seq, tid, pthread_id = old[0][0], old[0][1], old[0][2]
        mine = []  # (first_clock, bytes)
        for clock_before, _, _, piece in units[serial]:
            if not mine or len(mine[-1][1]) + len(piece) > room:
                mine.append((clock_before, bytearray()))
            mine[-1][1].extend(piece)
        if keep_last_chunks is not None and len(mine) > keep_last_chunks:
            base_seq += len(mine) - keep_last_chunks
            mine = mine[-keep_last_chunks:]
        for k, (first_clock, events) in enumerate(mine):
            head = struct.pack("<IIIiIIQQ", CHUNK_MAGIC, len(events), serial, tid, base_seq + k, 0,
                               first_clock, pthread_id)
            chunks.append(head.ljust(CHUNK_HEADER, b"\0") + events.ljust(room, b"\0"))

    new_area = len(header) + len(meta)
    struct.pack_into("<IIIQQQQ", header, 12, len(header), flags, CHUNK_SIZE, new_area, len(meta), len(meta),
                     len(chunks))
    # every chunk whole, its zero tail included: a reader takes a chunk cut
    # by the end of the file for a trace cut short
    return bytes(header) + bytes(meta) + b"".join(chunks)


def report(path):
    proc = subprocess.run([GILTRACE, "report", "--json", path], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"report {path}: {proc.stderr}")
    r = json.loads(proc.stdout)
    return {
        "threads": [(t["tid"], t["name"], t["exit"]) for t in r["threads"]],
        "gils": len(r["gils"]),
        "findings": sorted((f["id"], f["severity"]) for f in r["findings"]),
        "truncated": r["truncated"],
        "modules": len(r["modules"]),
    }


# ---- the scenarios ------------------------------------------------------------

def pyenv(minor):
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = sorted(glob.glob(f"{root}/versions/3.{minor}.*/bin/python3.{minor}"))
    return found[-1] if found else f"(no pyenv 3.{minor} under {root})"


DAEMONS = """\
import threading, time
def loop():
    for _ in range(20): time.sleep(0)
    time.sleep(0.05)
ts = [threading.Thread(target=loop, daemon=True) for _ in range(3)]
[t.start() for t in ts]
time.sleep(0.01)
"""

CONTENTION = """\
import sys, threading
sys.setswitchinterval(0.0002)
ts = [threading.Thread(target=sum, args=(range(300000),)) for _ in range(3)]
[t.start() for t in ts]; [t.join() for t in ts]
"""

NAMES = """\
import ctypes, threading
libc = ctypes.CDLL(None)
def named(n):
    libc.pthread_setname_np(ctypes.c_ulong(threading.get_ident()), n)
    sum(range(1000))
ts = [threading.Thread(target=named, args=(n,)) for n in (b"worker-one", b"w\\xe9\\x01rd-name-too-long")]
[t.start() for t in ts]; [t.join() for t in ts]
"""

FORK = """\
import os, threading, time
t = threading.Thread(target=time.sleep, args=(0.01,)); t.start()
pid = os.fork()
if pid == 0:
    t2 = threading.Thread(target=sum, args=(range(1000),)); t2.start(); t2.join()
    os._exit(0)
os.waitpid(pid, 0); t.join()
"""

KILLED = """\
import os, signal, threading, time
def loop():
    for _ in range(20): time.sleep(0)
    threading.Event().wait()
ts = [threading.Thread(target=loop, daemon=True) for _ in range(2)]
[t.start() for t in ts]
time.sleep(0.01)
os.kill(os.getpid(), signal.SIGKILL)
"""

SUBINTERP_312 = """\
import _xxsubinterpreters as interpreters
i = interpreters.create(); interpreters.run_string(i, "x = sum(range(100))"); interpreters.destroy(i)
"""

SUBINTERP_313 = """\
import _interpreters
i = _interpreters.create(); _interpreters.exec(i, "x = sum(range(100))"); _interpreters.destroy(i)
"""

# name: (interpreter, script text or tests/scenarios file, giltrace run options, GILTRACE_OPTIONS,
#        compact() options, needs gtscenario)
SCENARIOS_TABLE = {
    "daemons-3.11": ("/usr/bin/python3.11", DAEMONS, [], "", {}, False),
    "daemons-3.11d-stacks-all": ("/usr/bin/python3.11d", DAEMONS, [], "stacks=all:stack_depth=16", {}, False),
    "daemons-3.8": (pyenv(8), DAEMONS, [], "", {}, False),
    "daemons-3.13": (pyenv(13), DAEMONS, [], "", {}, False),
    "contention-3.12": (pyenv(12), CONTENTION, [], "", {}, False),
    "names-3.10": (pyenv(10), NAMES, [], "", {}, False),
    "fork-3.11": ("/usr/bin/python3.11", FORK, [], "", {}, False),
    "killed-3.9": (pyenv(9), KILLED, [], "", {}, False),
    "ring-3.11": ("/usr/bin/python3.11", CONTENTION, ["--mode", "ring", "--ring-size", "1"], "",
                  {"keep_last_chunks": 1, "prologue": None}, False),
    "subinterp-3.12": (pyenv(12), SUBINTERP_312, [], "", {}, False),
    "subinterp-3.13": (pyenv(13), SUBINTERP_313, [], "", {}, False),
    "gilstate-after-finalize-3.11": ("/usr/bin/python3.11", "gilstate_after_finalize.py", [], "", {}, True),
    "use-after-delete-3.12": (pyenv(12), "use_after_delete.py", [], "", {}, True),
    "exit-holding-gil-3.11": ("/usr/bin/python3.11", "exit_holding_gil.py", [], "", {}, True),
    "drop-request-hang-3.10": (pyenv(10), "drop_request_hang.py", [], "", {}, True),
}


def make(name, tmp):
    python, script, run_args, options, compact_args, needs_ext = SCENARIOS_TABLE[name]
    if not os.access(python, os.X_OK):
        print(f"  skip {name}: {python} not installed")
        return []
    env = dict(os.environ)
    env.pop("GILTRACE_OPTIONS", None)
    if options:
        env["GILTRACE_OPTIONS"] = options
    if needs_ext:
        env["PYTHONPATH"] = scenario_build.build_extension(python, os.path.join(tmp, "ext"))
    if script.endswith(".py"):
        path = os.path.join(SCENARIOS, script)
    else:
        path = os.path.join(tmp, name + ".py")
        with open(path, "w") as f:
            f.write(script)
    out = os.path.join(tmp, name, "t-%p.gtr")
    os.makedirs(os.path.dirname(out))
    subprocess.run([GILTRACE, "run", "-o", out, *run_args, "--", python, path], cwd=tmp, env=env,
                   capture_output=True, timeout=120)
    made = []
    for k, trace in enumerate(sorted(glob.glob(os.path.join(tmp, name, "*.gtr")))):
        with open(trace, "rb") as f:
            small = compact(f.read(), **compact_args)
        seed = os.path.join(SEEDS, f"{name}{'-%d' % k if k else ''}.gtr")
        with open(seed, "wb") as f:
            f.write(small)
        if not compact_args:
            want, got = report(trace), report(seed)
            if want != got:
                raise RuntimeError(f"{name}: the compacted trace reads differently:\n{want}\n{got}")
        print(f"  {os.path.relpath(seed, ROOT)}: {len(small)} bytes (from {os.path.getsize(trace)})")
        made.append(seed)
    if not made:
        print(f"  {name}: no trace written")
    return made


def main(argv):
    keep_going = "--keep-going" in argv
    names = [a for a in argv if not a.startswith("--")] or list(SCENARIOS_TABLE)
    if not os.access(GILTRACE, os.X_OK):
        sys.exit(f"{GILTRACE} is missing: run make first")
    os.makedirs(SEEDS, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="giltrace-seeds.")
    try:
        for name in names:
            try:
                make(name, tmp)
            except Exception as e:  # one scenario's trouble: say it, go on if asked
                if not keep_going:
                    raise
                print(f"  {name}: FAILED: {e}")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main(sys.argv[1:])
