"""Python context in findings: the Python thread name (threading.Thread.name,
whole, on every version) and the Python stack the shim reads next to each
native stack (shim/pystack.c), in check's text and JSON and in every view.

A Python stack read through a freed thread state must give "unreadable"
(provoke=poison fills it with an unmapped address), never a fault, and the
program must not notice.
"""
import json
import os
import re
import subprocess

import pytest

from helpers import (FREE_THREADED, GILTRACE, INTERPRETERS, SCENARIOS, check_json, dump, giltrace_run, of, report,
                     run_scenario, write_script)

NAMED = "poller-\u00e9-7 of the named_thread_exit scenario"


def line_of(path, pattern):
    with open(path, encoding="utf-8") as f:
        hits = [n for n, line in enumerate(f, 1) if re.search(pattern, line)]
    assert len(hits) == 1, (path, pattern, hits)
    return hits[0]


def threading_run_line(threading_py):
    """The line of Thread.run that calls the target, in that interpreter's
    threading.py."""
    with open(threading_py, encoding="utf-8") as f:
        lines = f.read().split("\n")
    start = next(i for i, l in enumerate(lines) if l.startswith("    def run(self"))
    return next(i for i in range(start, len(lines)) if "self._target(" in lines[i]) + 1


@pytest.fixture(params=INTERPRETERS + FREE_THREADED)
def python_any(request):
    return request.param


def test_finding_reads_in_python_terms(python_any, build_dir, tmp_path):
    """On every interpreter; the free-threaded one too: importing gtscenario
    (no Py_mod_gil_not_used) turns its GIL on, and the frames come from its
    _Py_DebugOffsets."""
    import scenario_build
    extension = scenario_build.build_extension(python_any, build_dir)
    proc, trace = run_scenario(python_any, "named_thread_exit.py", tmp_path, extension)
    assert proc.returncode == 1 and proc.stdout == "exited\n", proc.stderr
    result, _ = check_json(trace)
    (f,) = of(result, "exit-holding-gil")
    assert f["thread"]["name"] == NAMED
    ps = f["py_stack"]
    assert ps["end"] == "complete" and ps["thread_state"] == "attached", ps
    script = os.path.join(SCENARIOS, "named_thread_exit.py")
    frames = ps["frames"]
    assert [fr["function"] for fr in frames[:2]] == ["poll", "serve"], frames
    assert frames[0]["file"] == script and frames[0]["line"] == line_of(script, r"exit_thread_holding_gil\(\)  #")
    assert frames[1]["line"] == line_of(script, r"^    poll\(\)")
    # the threading frames below, with the line of that interpreter's source
    run = frames[2]
    assert run["function"] in ("run", "Thread.run") and run["file"].endswith("/threading.py"), frames
    assert run["line"] == threading_run_line(run["file"])
    assert [fr["function"].split(".")[-1] for fr in frames[3:]] == ["_bootstrap_inner", "_bootstrap"], frames
    # the text block, in check and in the report the run printed on stderr
    text = subprocess.run([GILTRACE, "check", trace], capture_output=True, text=True, timeout=120).stdout
    for out in (text, proc.stderr):
        assert f"thread {NAMED} (" in out
        assert (f"in Python: poll() at named_thread_exit.py:{frames[0]['line']}, "
                "which called exit_thread_holding_gil() from gtscenario.") in out
        assert f'File "{script}", line {frames[1]["line"]}, in serve' in out


def test_a_rename_in_run_is_seen(python_any, build_dir, tmp_path):
    import scenario_build
    extension = scenario_build.build_extension(python_any, build_dir)
    proc, trace = run_scenario(python_any, "named_thread_exit.py", tmp_path, extension, args=("rename",))
    assert proc.stdout == "exited\n", proc.stderr
    (f,) = of(check_json(trace)[0], "exit-holding-gil")
    assert f["thread"]["name"] == "renamed-\u20ac-poller", f["thread"]
    assert "thread renamed-\u20ac-poller (" in proc.stderr


def test_thread_names_in_every_view(python_any, tmp_path):
    """The whole name, non-ASCII, and threading's default names, in the
    report, the timeline, the HTML page and the export."""
    script = write_script(tmp_path, (
        "import threading\n"
        "def work():\n"
        "    sum(range(20000))\n"
        "named = threading.Thread(target=work, name='worker-\\u00e9-1 with a name of 40 chars')\n"
        "plain = threading.Thread(target=work)\n"
        "for t in (named, plain):\n"
        "    t.start()\n"
        "    t.join()\n"
        "print(plain.name)\n"))
    proc, trace = giltrace_run(python_any, script, tmp_path)
    assert proc.returncode == 0, proc.stderr
    default = proc.stdout.strip()
    names = [t["name"] for t in report(trace)["threads"]]
    assert "worker-\u00e9-1 with a name of 40 chars" in names and default in names, names
    timeline = subprocess.run([GILTRACE, "timeline", "--around", "whole", trace], capture_output=True, text=True,
                              timeout=120)
    assert timeline.returncode == 0 and "worker-\u00e9-1" in timeline.stdout, timeline.stdout
    page = tmp_path / "page.html"
    html = subprocess.run([GILTRACE, "report", "--html", str(page), "--around", "whole", trace],
                          capture_output=True, text=True, timeout=120)
    assert html.returncode == 0, html.stderr
    assert "worker-\u00e9-1 with a name of 40 chars" in page.read_text(encoding="utf-8")
    export = subprocess.run([GILTRACE, "export", "-o", "-", trace], capture_output=True, text=True, timeout=120)
    lanes = [e["args"]["name"] for e in json.loads(export.stdout)["traceEvents"]
             if e.get("ph") == "M" and e.get("name") == "thread_name"]
    assert any("worker-\u00e9-1 with a name of 40 chars" in n for n in lanes), lanes


def test_freed_thread_state_is_unreadable_not_a_fault(python, extension, tmp_path, monkeypatch):
    """bpo-39877's daemon resumes on a freed thread state, poisoned: its
    Python stack cannot be read, and says so; the program is unchanged."""
    monkeypatch.setenv("GILTRACE_OPTIONS", "provoke=poison")
    proc, trace = run_scenario(python, "restore_after_finalize.py", tmp_path, extension)
    assert proc.stdout == "main exits\n", proc.stderr
    result, _ = check_json(trace)
    stacks = [f["py_stack"] for f in result["findings"] if f["py_stack"] and f["py_stack"]["from_freed_thread_state"]]
    assert stacks, result["findings"]
    for ps in stacks:
        assert ps["end"] == "unreadable" and "Bad address" in ps["detail"] and not ps["frames"], ps


def test_freed_thread_state_shows_what_it_still_held(python, extension, tmp_path):
    """Unpoisoned, the freed block still holds the daemon's frames: shown,
    and said to come from a freed thread state."""
    proc, trace = run_scenario(python, "restore_after_finalize.py", tmp_path, extension)
    assert proc.stdout == "main exits\n", proc.stderr
    result, _ = check_json(trace)
    stacks = [f["py_stack"] for f in result["findings"] if f["py_stack"] and f["py_stack"]["from_freed_thread_state"]]
    assert stacks, result["findings"]
    text = subprocess.run([GILTRACE, "check", trace], capture_output=True, text=True, timeout=120).stdout
    for ps in stacks:
        # either the frames it held, or an honest reason: never a fault
        if ps["frames"]:
            assert ps["frames"][-1]["function"].endswith("_bootstrap"), ps
            assert "read from the freed thread state: what it still held" in text
        else:
            assert ps["end"] in ("unreadable", "bad-frame"), ps


@pytest.fixture
def python311(request):
    path = "/usr/bin/python3.11"
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} not installed (apt-get install python3.11)")
    return path


def test_py_stack_depth_bounds_the_frames_and_zero_turns_them_off(python311, tmp_path, monkeypatch):
    import scenario_build
    ext = scenario_build.build_extension(python311, str(tmp_path / "ext"))
    monkeypatch.setenv("GILTRACE_OPTIONS", "py_stack_depth=2")
    _, trace = run_scenario(python311, "named_thread_exit.py", tmp_path, ext)
    ps = of(check_json(trace)[0], "exit-holding-gil")[0]["py_stack"]
    assert [fr["function"] for fr in ps["frames"]] == ["poll", "serve"] and ps["end"] == "depth", ps
    monkeypatch.setenv("GILTRACE_OPTIONS", "py_stack_depth=0")
    (tmp_path / "off").mkdir()
    _, trace = run_scenario(python311, "named_thread_exit.py", tmp_path / "off", ext)
    f = of(check_json(trace)[0], "exit-holding-gil")[0]
    assert f["py_stack"] is None and f["stack"], f
    assert "py-stack" not in dump(trace)
    monkeypatch.setenv("GILTRACE_OPTIONS", "py_stack_depth=65")
    (tmp_path / "bad").mkdir()
    proc, trace = run_scenario(python311, "named_thread_exit.py", tmp_path / "bad", ext)
    assert "py_stack_depth" in proc.stderr and "0 (none) to 64" in proc.stderr
    assert len(of(check_json(trace)[0], "exit-holding-gil")[0]["py_stack"]["frames"]) == 5


def test_suppression_by_python_file(python311, tmp_path):
    import scenario_build
    ext = scenario_build.build_extension(python311, str(tmp_path / "ext"))
    _, trace = run_scenario(python311, "named_thread_exit.py", tmp_path, ext)
    rules = tmp_path / "rules.supp"
    rules.write_text("exit-holding-gil:named_thread_exit.py\n")
    proc = subprocess.run([GILTRACE, "check", "--json", "--suppressions", str(rules), trace], capture_output=True,
                          text=True, timeout=120)
    result = json.loads(proc.stdout)[0]
    assert proc.returncode == 0 and not of(result, "exit-holding-gil") and result["suppressed"] == 1, proc.stdout
    rules.write_text("exit-holding-gil:*.Thread._bootstrap_inner*\nexit-holding-gil:poll\n")
    proc = subprocess.run([GILTRACE, "check", "--json", "--suppressions", str(rules), trace], capture_output=True,
                          text=True, timeout=120)
    assert json.loads(proc.stdout)[0]["suppressed"] == 1
