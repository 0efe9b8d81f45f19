"""The detectors, on real interpreters running real C code (tests/scenarios/).

Each scenario has the findings it must produce and, as important, the ones it
must not: CPython's own must-exit path during finalization is a note, never an
error.  The C parts are built per interpreter with its own headers and
python-config (tests/scenario_build.py).
"""
import json
import os
import re
import shutil
import signal
import subprocess

import pytest

from helpers import (FREE_THREADED, GILTRACE, GILTRACE_SAN, ROOT, SCENARIOS, SHIM, assert_recorded, check_json, dump,
                     errors, main_tid, of, pythons_cache, report, run_scenario, version_of)
import scenario_build



# ---- finalization: the expected path is a note ---------------------------------

def test_restore_after_finalize_is_a_note(python, extension, tmp_path):
    """bpo-39877: a daemon thread's PyEval_RestoreThread with a thread state that
    finalization freed: CPython ends (or parks, or on 3.8 blocks) the thread."""
    proc, trace = run_scenario(python, "restore_after_finalize.py", tmp_path, extension)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "main exits\n"
    result, status = check_json(trace)
    assert status == 0 and errors(result) == []
    notes = of(result, "exit-in-take-gil") + of(result, "parked-at-exit")
    assert len(notes) == 1, result["findings"]
    note = notes[0]
    assert note["thread"]["tid"] != main_tid(result)
    assert note["call"]["function"] == "PyEval_RestoreThread"
    assert note["call"]["caller_location"].startswith("gtscenario.")
    assert note["finalizing"] and note["since_finalization_ns"] >= 0
    ts = note["tstate"]
    assert ts["freed"], note
    assert ts["freed_by"]["tid"] == main_tid(result)
    assert ts["freed_since_finalization_ns"] >= 0
    assert ts["freed_at_ns"] <= note["at_ns"]


# ---- errors ---------------------------------------------------------------------

def test_gilstate_ensure_after_finalize(python, extension, tmp_path):
    proc, trace = run_scenario(python, "gilstate_after_finalize.py", tmp_path, extension)
    assert proc.returncode == 1, proc.stderr  # run --check: an error finding
    assert proc.stdout == "main exits\n"
    assert "giltrace ERROR: gilstate-after-finalize" in proc.stderr
    result, status = check_json(trace)
    assert status == 1
    (f,) = of(result, "gilstate-after-finalize")
    assert f["thread"]["tid"] != main_tid(result)
    assert f["call"]["function"] == "PyGILState_Ensure"
    assert f["call"]["caller_location"].startswith("gtscenario.")
    assert f["finalizing"] and f["since_finalization_ns"] >= 0
    assert [e["id"] for e in errors(result)] == ["gilstate-after-finalize"]


def test_use_of_own_deleted_tstate(python, extension, tmp_path):
    """PyThreadState_Clear + DeleteCurrent, then PyEval_RestoreThread with it,
    nothing finalizing.  The process may crash (a debug build's 0xDD fill)."""
    proc, trace = run_scenario(python, "use_after_delete.py", tmp_path, extension)
    assert proc.returncode == 1, proc.stderr  # run --check: the error, crash or not
    result, status = check_json(trace)
    assert status == 1
    found = of(result, "freed-tstate-use")
    assert found, result["findings"]
    f = found[0]
    assert f["call"]["function"] == "PyEval_RestoreThread"
    assert f["call"]["caller_location"].startswith("gtscenario.")
    assert not f["finalizing"]
    assert f["tstate"]["freed"] and f["tstate"]["freed_by"]["tid"] == f["thread"]["tid"]
    assert f["thread"]["tid"] != main_tid(result)


def test_thread_exits_holding_the_gil(python, extension, tmp_path):
    proc, trace = run_scenario(python, "exit_holding_gil.py", tmp_path, extension)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == "joined\n"
    result, _ = check_json(trace)
    (f,) = of(result, "exit-holding-gil")
    assert f["thread"]["tid"] != main_tid(result)
    assert "pthread_exit" in f["what"]
    assert [e["id"] for e in errors(result)] == ["exit-holding-gil"]


@pytest.mark.parametrize("variant", ["stale", "clean"])
def test_embedding_program_reinitialises(python, build_dir, tmp_path, variant):
    """A PyThreadState* kept across Py_FinalizeEx and a new Py_Initialize."""
    program = scenario_build.build_embed(python, build_dir)
    args = [] if variant == "stale" else ["clean"]
    trace = str(tmp_path / "embed.gtr")
    proc = subprocess.run([GILTRACE, "run", "-o", trace, "--", program, *args], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    result, status = check_json(trace)
    if variant == "clean":
        assert proc.returncode == 0, proc.stderr
        assert result["findings"] == []
        # what "no finding" rests on: both finalizations and the program's
        # PyEval_RestoreThread were seen
        rep = report(trace)
        assert_recorded(rep)
        events = dump(trace)
        assert len([e for e in events if e[2] == "finalizing" and e[3][0] == "set"]) == 2
        assert [e for e in events if e[2] == "capi-call" and "fn=PyEval_RestoreThread" in e[3]]
        # the report tells of both finalizations, the first ended by the
        # second Py_Initialize
        first, second = rep["finalizations"]
        assert first["end_ns"] is not None and first["start_ns"] < first["end_ns"] < second["start_ns"]
        assert second["end_ns"] is None
        assert rep["finalization"] == {k: v for k, v in first.items() if k != "end_ns"}
        text = subprocess.run([GILTRACE, "report", trace], capture_output=True, text=True, timeout=60).stdout
        assert "\nfinalization 1 of 2: started at +" in text and "\nfinalization 2 of 2: started at +" in text
        return
    found = of(result, "freed-tstate-use")
    assert status == 1 and found, result["findings"]
    f = found[0]
    assert f["call"]["function"] == "PyEval_RestoreThread"
    assert f["call"]["caller_location"].startswith("embed")
    assert not f["finalizing"]
    assert f["tstate"]["freed"] and f["tstate"]["freed_by"]["tid"] == main_tid(result)
    # freed by the first Py_FinalizeEx, after its finalization began
    assert f["tstate"]["freed_since_finalization_ns"] >= 0


def has_gh96387_bug(version):
    return version[:2] == (3, 9) or (version[:2] == (3, 10) and version[2] < 8) or version[:3] == (3, 11, 0)


def test_drop_request_left_by_a_dead_thread(python, extension, tmp_path):
    """gh-96387: the finalizing thread waits on switch_cond for a daemon thread
    that set a drop request and exited.  Interpreters with the bug hang: the
    run is bounded and killed, and the trace left behind says why."""
    version = version_of(python)
    trace = str(tmp_path / "hang.gtr")
    env = dict(os.environ, PYTHONPATH=extension, LD_PRELOAD=SHIM,
               GILTRACE_OPTIONS=f"output={trace}:check=0")
    proc = subprocess.Popen([python, os.path.join(SCENARIOS, "drop_request_hang.py")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=10)
        hung = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        hung = True
    result, status = check_json(trace)
    found = of(result, "switch-wait-on-dead-thread")
    if has_gh96387_bug(version):
        assert hung, f"{version} should hang (gh-96387); stderr: {err}"
        assert result["truncated"]
        assert status == 1 and len(found) == 1, result["findings"]
        f = found[0]
        assert f["thread"]["tid"] == main_tid(result)
        assert f["waiting_for"]["tid"] != main_tid(result)
    else:
        # fixed (or, on 3.8, no must-exit check in that wait): no hang
        assert not hung, f"{version} hung"
        assert proc.returncode == 0, err
        assert found == [] and errors(result) == []
        # the daemon's end during finalization, which the verdict is about, is in the trace
        rep = assert_recorded(report(trace), workers=1)
        assert all(t["exit"] for t in rep["threads"]), rep["threads"]


# ---- notes only, many runs ---------------------------------------------------------

def preload_run(python, script, tmp_path, runs, timeout=60):
    """Runs script `runs` times with the shim preloaded by environment only;
    returns the traces.  The shim's own report at exit must not show an error."""
    traces = []
    for i in range(runs):
        trace = str(tmp_path / f"run{i}.gtr")
        env = dict(os.environ, LD_PRELOAD=SHIM, GILTRACE_OPTIONS=f"output={trace}")
        proc = subprocess.run([python, os.path.join(SCENARIOS, script)], env=env, capture_output=True,
                              text=True, timeout=timeout, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "giltrace ERROR" not in proc.stderr, proc.stderr
        traces.append(trace)
    return traces


def assert_notes_only(traces, workers):
    """Notes only, in traces that hold the `workers` threads and the finalization."""
    proc = subprocess.run([GILTRACE, "check", "--json", *traces], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(proc.stdout)
    assert len(results) == len(traces)
    for trace in traces:
        assert_recorded(report(trace), workers=workers)
    for r in results:
        assert r["usable"] and errors(r) == [], r["findings"]
        for f in r["findings"]:
            assert f["id"] in ("exit-in-take-gil", "parked-at-exit")
            assert f["thread"]["tid"] != r["pid"]
    return results


def test_bpo39877_sleeping_daemons_notes_only(python, tmp_path):
    results = assert_notes_only(preload_run(python, "bpo39877.py", tmp_path, runs=5), workers=10)
    # the daemons sleep while main exits: finalization ends some of them
    assert any(r["findings"] for r in results)


def test_4_daemon_threads_shape_notes_only(python, tmp_path):
    assert_notes_only(preload_run(python, "daemon_io.py", tmp_path, runs=20), workers=40)


# Threads each clean program starts for certain: a pool may hand work to an
# idle thread rather than start another.
CLEAN_WORKERS = {"clean_join.py": 4, "clean_pool.py": 1, "clean_asyncio.py": 1}


@pytest.mark.parametrize("script", CLEAN_WORKERS)
def test_clean_programs_have_no_findings(python, tmp_path, script):
    proc, trace = run_scenario(python, script, tmp_path)
    assert proc.returncode == 0, proc.stderr
    result, status = check_json(trace)
    assert status == 0 and result["findings"] == []
    assert_recorded(report(trace), workers=CLEAN_WORKERS[script])
    assert "giltrace" not in proc.stderr.replace("giltrace: trace of pid", "")


# ---- reporting ----------------------------------------------------------------------

def test_shim_reports_at_exit_without_changing_the_program(python, extension, tmp_path):
    """Preloaded by environment only: the finding appears on stderr, the
    program's stdout and exit status are its own."""
    trace = str(tmp_path / "env.gtr")
    env = dict(os.environ, PYTHONPATH=extension, LD_PRELOAD=SHIM, GILTRACE_OPTIONS=f"output={trace}")
    script = os.path.join(SCENARIOS, "gilstate_after_finalize.py")
    plain = subprocess.run([python, script], env=dict(os.environ, PYTHONPATH=extension), capture_output=True,
                           text=True, timeout=60)
    traced = subprocess.run([python, script], env=env, capture_output=True, text=True, timeout=60)
    assert traced.returncode == plain.returncode == 0
    assert traced.stdout == plain.stdout == "main exits\n"
    pid = re.search(r"==(\d+)== giltrace ERROR: gilstate-after-finalize", traced.stderr)
    assert pid, traced.stderr
    block = traced.stderr[pid.start():]
    assert "PyGILState_Ensure() from gtscenario." in block
    # a path that exists: the checkout's docs/, where build/giltrace runs from
    assert f"see {ROOT}/docs/findings.md#gilstate-after-finalize" in block
    # check=0 turns it off
    quiet = subprocess.run([python, script], env=dict(env, GILTRACE_OPTIONS=f"output={trace}.2:check=0"),
                           capture_output=True, text=True, timeout=60)
    assert "giltrace" not in quiet.stderr


def test_static_interpreter_calls_reach_the_wrappers(python, extension, tmp_path):
    """GOT patching: the extension's C-API calls are seen on every build; the
    interpreter's own calls only where it calls through its PLT."""
    proc, trace = run_scenario(python, "restore_after_finalize.py", tmp_path, extension, check=False)
    rep = json.loads(subprocess.run([GILTRACE, "report", "--json", trace], capture_output=True, text=True,
                                    check=True).stdout)
    interp = rep["interpreter"]
    # the extension's call is seen on every build
    calls = [e for e in dump(trace) if e[2] == "capi-call" and "fn=PyEval_RestoreThread" in e[3]]
    assert calls, "the extension's PyEval_RestoreThread was not seen"
    if not interp["shared"]:
        assert not interp["internal_capi_calls_seen"]
        assert interp["capi_got_slots"] > 0
    elif "/.pyenv/" in python or python.startswith(pythons_cache() + os.sep):
        # pyenv's and make pythons' builds: plain ./configure, no
        # -fno-semantic-interposition
        assert interp["internal_capi_calls_seen"]
    else:
        pytest.skip(f"{python}: a shared build from elsewhere; whether it calls itself through its PLT "
                    "depends on how it was built")


def test_check_folder_exit_statuses(python, extension, tmp_path):
    folder = tmp_path / "artifacts"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(run_scenario(python, "clean_join.py", tmp_path)[1], folder / "a.gtr")
    assert subprocess.run([GILTRACE, "check", str(folder)], capture_output=True).returncode == 0
    (folder / "nested" / "junk.gtr").write_bytes(b"not a trace")
    proc = subprocess.run([GILTRACE, "check", str(folder)], capture_output=True, text=True)
    assert proc.returncode == 2 and "junk.gtr" in proc.stderr
    shutil.copy(run_scenario(python, "exit_holding_gil.py", tmp_path, extension)[1], folder / "nested" / "b.gtr")
    proc = subprocess.run([GILTRACE_SAN, "check", str(folder)], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert "checked 3 traces: 1 with errors, 1 unusable" in proc.stdout
    assert "runtime error" not in proc.stderr


def test_exitcode_option(python, extension, tmp_path):
    """exitcode=N (as the sanitizers'): a process with an error finding exits
    with N, its output flushed; a clean one keeps its own status; a bad
    value is one warning and no change."""
    script = os.path.join(SCENARIOS, "gilstate_after_finalize.py")

    def run(options, code=None):
        env = dict(os.environ, PYTHONPATH=extension, LD_PRELOAD=SHIM,
                   GILTRACE_OPTIONS=f"output={tmp_path}/x.%p.gtr:{options}")
        return subprocess.run([python] + (["-c", code] if code else [script]), env=env, capture_output=True,
                              text=True, timeout=60)

    faulty = run("exitcode=23")
    assert faulty.returncode == 23 and faulty.stdout == "main exits\n", faulty.stderr
    assert "giltrace ERROR: gilstate-after-finalize" in faulty.stderr
    clean = run("exitcode=23", "import sys; print('clean'); sys.exit(4)")
    assert clean.returncode == 4 and clean.stdout == "clean\n" and clean.stderr == "", clean.stderr
    bad = run("exitcode=0")
    assert bad.returncode == 0 and "exitcode" in bad.stderr and "1 to 255" in bad.stderr


# ---- free-threaded builds: what does not need a GIL ----------------------------

@pytest.mark.parametrize("python", FREE_THREADED)
def test_free_threaded_scenarios(python, extension, tmp_path, monkeypatch):
    """With the GIL disabled (PYTHON_GIL=0: gtscenario, a single-phase
    module, would turn it on), the findings that rest on C-API calls and
    thread-state frees are the same as with a GIL: gilstate-after-finalize,
    freed-tstate-use, and bpo-39877's restore as a note.  A thread that ends
    without releasing has no GIL to hold: exit-holding-gil cannot apply, and
    a free-threaded thread that exits attached is not seen (README.md)."""
    monkeypatch.setenv("PYTHON_GIL", "0")
    expected = {
        "gilstate_after_finalize.py": (["gilstate-after-finalize"], "main exits\n"),
        "use_after_delete.py": (["freed-tstate-use"], None),
        "restore_after_finalize.py": ([], "main exits\n"),
        "exit_holding_gil.py": ([], "joined\n"),
    }
    for script, (errors_expected, stdout) in expected.items():
        proc, trace = run_scenario(python, script, tmp_path, extension, check=False)
        if stdout is not None:
            assert proc.stdout == stdout, (script, proc.stdout, proc.stderr)
        result, _ = check_json(trace)
        assert sorted({f["id"] for f in errors(result)}) == errors_expected, (script, result["findings"])
        if script == "restore_after_finalize.py":
            (note,) = of(result, "parked-at-exit")   # 3.13.15t parks
            assert note["call"]["function"] == "PyEval_RestoreThread" and note["tstate"]["freed"]
        rep = report(trace)
        assert all(g["acquisitions"] == 0 for g in rep["gils"]), script  # the GIL stayed off
