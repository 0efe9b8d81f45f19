"""Native stacks: captured by the shim at the events that explain findings,
symbolised by giltrace with elfutils, shown in check, report and on stderr.

The scenarios' C code (tests/scenarios/gtscenario.c) is built with -g, so
the frame that made the fatal call must come out as function, file and line.
"""
import os
import re
import shutil
import subprocess

import pytest

from helpers import GILTRACE, GILTRACE_SAN, ROOT, SCENARIOS, SHIM, WAIT_THREADS_GONE, check_json, dump, of, run_scenario
import scenario_build

GTSCENARIO_C = os.path.join(SCENARIOS, "gtscenario.c")


def source_line(pattern):
    """The line number in gtscenario.c of the one line matching pattern."""
    with open(GTSCENARIO_C) as f:
        hits = [n for n, line in enumerate(f, 1) if re.search(pattern, line)]
    assert len(hits) == 1, (pattern, hits)
    return hits[0]


def frames_in(stack, function):
    return [fr for fr in stack if fr["function"] == function]


def test_fatal_call_is_symbolised_to_its_source_line(python, extension, tmp_path):
    proc, trace = run_scenario(python, "gilstate_after_finalize.py", tmp_path, extension)
    result, _ = check_json(trace)
    (f,) = of(result, "gilstate-after-finalize")
    top = f["stack"][0]
    assert top["function"] == "native_waiter", f["stack"]
    assert top["file"].endswith("gtscenario.c")
    assert top["line"] == source_line(r"state = PyGILState_Ensure\(\)")
    assert top["module"].startswith("gtscenario.")
    # the same stack in the text blocks: check, and run's report on stderr
    text = subprocess.run([GILTRACE, "check", trace], capture_output=True, text=True, timeout=120).stdout
    line = f"in native_waiter {top['file']}:{top['line']} ({top['module']}+0x"
    assert line in text
    assert line in proc.stderr


def test_freed_thread_state_shows_where_it_was_freed(python, extension, tmp_path):
    proc, trace = run_scenario(python, "use_after_delete.py", tmp_path, extension)
    result, _ = check_json(trace, binary=GILTRACE_SAN)
    f = of(result, "freed-tstate-use")[0]
    use = f["stack"][0]
    assert use["function"] == "use_after_delete_thread"
    assert use["line"] == source_line(r"PyEval_RestoreThread\(ts\);\s*/\* use after free")
    # the free happened inside PyThreadState_DeleteCurrent, called from the same function
    freed = f["tstate"]["freed_stack"]
    callers = frames_in(freed, "use_after_delete_thread")
    assert callers, freed
    assert callers[0]["line"] == source_line(r"PyThreadState_DeleteCurrent\(\);\s*/\* frees ts")
    text = subprocess.run([GILTRACE, "check", trace], capture_output=True, text=True, timeout=120).stdout
    assert re.search(r"was freed by this thread at \+[^\n]*:\n      #0 0x", text), text


def test_stacks_only_at_rare_events_by_default(python, extension, tmp_path):
    """The hot path (GIL handoffs, ordinary C-API calls with a live thread
    state) never pays for a stack."""
    _, trace = run_scenario(python, "clean_pool.py", tmp_path, check=False)
    events = dump(trace)
    fin = [ts for ts, _, name, details in events if name == "finalizing" and details[0] == "set"]
    seen_tstates = set()
    stacked = 0
    for ts, _, name, details in events:
        has_stack = any(d.startswith("stack=") for d in details)
        fields = dict(d.split("=", 1) for d in details if "=" in d)
        if name in ("gil-acquire", "gil-release", "gil-take-begin", "gil-wait-begin", "capi-return"):
            assert not has_stack, (ts, name, details)
        if name == "capi-call" and has_stack:
            finalizing = fin and ts >= fin[0]
            unknown = fields["subject"] != "0x0" and fields["subject"] not in seen_tstates
            assert finalizing or unknown or fields["fn"] in ("Py_FinalizeEx", "Py_Finalize"), (ts, details)
        if name == "gil-acquire":
            seen_tstates.add(fields["tstate"])
        if name == "capi-return" and fields.get("fn") in ("PyThreadState_New", "PyEval_SaveThread"):
            seen_tstates.add(fields["result"])
        stacked += has_stack
    assert stacked < len(events) / 20, (stacked, len(events))


@pytest.fixture
def python311(build_dir):
    """The options are the shim's, not the interpreter's: one is enough."""
    python = "/usr/bin/python3.11"
    if not os.access(python, os.X_OK):
        pytest.skip(f"{python} not installed (apt-get install python3.11)")
    return python, scenario_build.build_extension(python, build_dir)


def test_stacks_none_records_no_stack(python311, tmp_path, monkeypatch):
    python, extension = python311
    monkeypatch.setenv("GILTRACE_OPTIONS", "stacks=none")
    _, trace = run_scenario(python, "gilstate_after_finalize.py", tmp_path, extension)
    assert not [e for e in dump(trace) if any(d.startswith("stack=") for d in e[3])]
    result, _ = check_json(trace)
    assert result["findings"] and all(f["stack"] is None for f in result["findings"])


def test_bad_stacks_option_warns_and_keeps_the_default(python311, tmp_path, monkeypatch):
    python, extension = python311
    monkeypatch.setenv("GILTRACE_OPTIONS", "stacks=sometimes:stack_depth=0")
    proc, trace = run_scenario(python, "gilstate_after_finalize.py", tmp_path, extension)
    assert "bad stacks 'sometimes' (valid: none, or a comma list of" in proc.stderr
    assert "bad stack_depth '0' (valid: frames per stack, 1 to 64)" in proc.stderr
    result, _ = check_json(trace)
    assert of(result, "gilstate-after-finalize")[0]["stack"]


def test_stack_depth_bounds_the_frames(python311, tmp_path, monkeypatch):
    python, extension = python311
    monkeypatch.setenv("GILTRACE_OPTIONS", "stack_depth=2")
    _, trace = run_scenario(python, "gilstate_after_finalize.py", tmp_path, extension)
    stacks = [d for e in dump(trace) for d in e[3] if d.startswith("stack=")]
    assert stacks and all(len(d.split(",")) <= 2 for d in stacks)


def test_capture_does_not_allocate(python, extension, tmp_path):
    """backtrace() inside free() and the wrappers must not call malloc: a
    preloaded counter wraps backtrace() and counts allocations inside it."""
    counter = str(tmp_path / "count_malloc.so")
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", counter,
                    os.path.join(ROOT, "tests", "support", "count_malloc_in_backtrace.c"), "-ldl"], check=True)
    out = str(tmp_path / "counts.txt")
    script = ("import threading, time\n"
              "def work():\n"
              "    for _ in range(50): time.sleep(0.0002)\n"
              "ts = [threading.Thread(target=work) for _ in range(4)]\n"
              "[t.start() for t in ts]; [t.join() for t in ts]\n" + WAIT_THREADS_GONE)
    env = dict(os.environ, LD_PRELOAD=f"{counter} {SHIM}", COUNT_MALLOC_OUT=out,
               GILTRACE_OPTIONS=f"output={tmp_path}/t.gtr:check=0:stacks=all")
    proc = subprocess.run([python, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    counts = dict(kv.split("=") for kv in open(out).read().split())
    assert int(counts["backtrace_calls"]) >= 5  # activation, then the 4 threads' frees
    assert int(counts["mallocs_inside"]) == 0


def test_symbols_found_by_build_id_elsewhere(python, extension, tmp_path, monkeypatch):
    """Analysed elsewhere: the traced extension is gone from its path (another
    file with another build-id is there); GILTRACE_SYMBOL_PATH names a folder
    holding the traced one."""
    ext = str(tmp_path / "ext")
    shutil.copytree(extension, ext)
    (so,) = [n for n in os.listdir(ext) if n.startswith("gtscenario.") and n.endswith(".so")]
    _, trace = run_scenario(python, "gilstate_after_finalize.py", tmp_path, ext)
    keep = tmp_path / "symbols"
    keep.mkdir()
    shutil.copy(os.path.join(ext, so), keep / so)
    shutil.copy(SHIM, os.path.join(ext, so))  # same path, another build-id

    result, _ = check_json(trace)
    top = of(result, "gilstate-after-finalize")[0]["stack"][0]
    assert top["module"] == so and top["function"] is None and top["file"] is None
    assert f"{ext}/{so}: the file there has another build-id" in " ".join(result["symbol_problems"])
    text = subprocess.run([GILTRACE, "check", trace], capture_output=True, text=True, timeout=120).stdout
    assert f"stack symbols: {ext}/{so}: the file there has another build-id" in text

    monkeypatch.setenv("GILTRACE_SYMBOL_PATH", f"/nonexistent:{keep}")
    result, _ = check_json(trace)
    top = of(result, "gilstate-after-finalize")[0]["stack"][0]
    assert top["function"] == "native_waiter"
    assert top["line"] == source_line(r"state = PyGILState_Ensure\(\)")
    assert not [p for p in result["symbol_problems"] if so in p]
