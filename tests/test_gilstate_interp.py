"""gilstate-wrong-interpreter (gh-59956): PyGILState_Ensure on a native thread
that a subinterpreter started gives it a thread state of the main
interpreter.  tests/scenarios/gilstate_subinterp.py starts such a thread from
a subinterpreter that shares the main GIL (3.8-3.13) and from one with its
own GIL (3.13: ctypes does not load in 3.12's isolated subinterpreters); the
same thread started from the main interpreter, and a subinterpreter's own
threading.Thread calling back through ctypes, are correct and give nothing.
"""
import subprocess

import pytest

from helpers import ROOT, check_json, dump, errors, main_tid, of, run_scenario


def subinterpreters(python):
    for module in ("_interpreters", "_xxsubinterpreters"):
        if subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0:
            return module
    pytest.skip(f"{python} has neither _interpreters nor _xxsubinterpreters")


def scenario(python, extension, tmp_path, mode):
    proc, trace = run_scenario(python, "gilstate_subinterp.py", tmp_path, extension, args=(mode,))
    assert proc.returncode in (0, 1), proc.stderr
    # the program never notices: the thread's Ensure gave it the main
    # interpreter (id 0) with or without giltrace
    untraced = subprocess.run([python, "tests/scenarios/gilstate_subinterp.py", mode], capture_output=True,
                              text=True, timeout=60, env={"PYTHONPATH": extension}, cwd=ROOT)
    assert proc.stdout == untraced.stdout, (proc.stdout, untraced.stdout, untraced.stderr)
    result, status = check_json(trace)
    return proc, trace, result, status


def test_subinterpreter_thread_given_the_main_interpreter(python, extension, tmp_path):
    subinterpreters(python)
    proc, trace, result, status = scenario(python, extension, tmp_path, "legacy")
    assert proc.stdout == "interpreter 0\n"
    (finding,) = of(result, "gilstate-wrong-interpreter")
    assert errors(result) == [finding] and status == 1
    assert finding["thread"]["tid"] != main_tid(result)
    assert "gh-59956" in finding["what"] and "subinterpreter 0x" in finding["what"]
    assert f"thread {main_tid(result)} (main)" in finding["what"]
    assert finding["call"]["function"] == "PyGILState_Ensure", finding
    assert any(f["function"] == "gilstate_thread" for f in finding["stack"]), finding["stack"]


def test_own_gil_subinterpreter_thread_takes_the_main_gil(python, extension, tmp_path):
    if subinterpreters(python) != "_interpreters":
        pytest.skip(f"{python}: no subinterpreter with its own GIL where ctypes loads (3.13+)")
    proc, trace, result, status = scenario(python, extension, tmp_path, "own")
    (finding,) = of(result, "gilstate-wrong-interpreter")
    assert errors(result) == [finding]
    assert "and with it GIL 0, not the subinterpreter's GIL 1" in finding["what"], finding["what"]


def test_main_interpreter_thread_is_clean(python, extension, tmp_path):
    proc, trace, result, status = scenario(python, extension, tmp_path, "main")
    assert proc.stdout == "interpreter 0\n"
    assert result["findings"] == [] and status == 0
    # threads the main interpreter starts are not watched: no event at all
    assert [e for e in dump(trace) if e[2] == "thread-interp"] == []


def test_subinterpreter_threading_thread_is_clean(python, extension, tmp_path):
    subinterpreters(python)
    proc, trace, result, status = scenario(python, extension, tmp_path, "thread")
    assert proc.returncode == 0 and proc.stdout == "interpreter -1\n", proc.stderr
    assert result["findings"] == [] and status == 0
    # watched, and its Ensure stayed in the subinterpreter that started it
    interps = [e[3] for e in dump(trace) if e[2] == "thread-interp"]
    assert len(interps) == 2, interps
    creator, ensured = (dict(d.split("=", 1) for d in details if "=" in d) for details in interps)
    assert ensured["interp"] == creator["interp"] != creator["main"]
