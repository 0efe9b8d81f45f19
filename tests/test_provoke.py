"""Provocations (the shim's provoke=, run and stress --provoke;
shim/provoke.c, docs/options.md): they do what they say to the traced
process, and every output names them, so that a provoked run is never taken
for a natural one.
"""
import os
import subprocess
import time

import pytest

from helpers import (GILTRACE, INTERPRETERS, ROOT, SCENARIOS, SHIM, check_json, dump, errors, giltrace_run, of,
                     report, run_scenario, version_of, write_script)

QUICK = 'print("done")\n'


@pytest.fixture(params=INTERPRETERS)
def python(request):
    return request.param


def timed_run(python, script, tmp_path, *args, name="trace.gtr", env=None):
    out = str(tmp_path / name)
    start = time.monotonic()
    proc = subprocess.run([GILTRACE, "run", "-o", out, *args, "--", python, script], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, env=env)
    return proc, out, time.monotonic() - start


def main_events(trace):
    events = dump(trace)
    pid = min(tid for _, tid, _, _ in events)  # the main thread's tid is the pid
    return events, pid


def test_exit_delay_holds_the_exit_after_finalization(python, tmp_path):
    """exit-delay=1s: the process exits about 1 s later, and the trace puts
    the delay after finalization began: between the finalizing flag's flip
    (or Py_FinalizeEx's return) and the process's exit event."""
    script = write_script(tmp_path, QUICK)
    plain, _, plain_wall = timed_run(python, script, tmp_path, name="plain.gtr")
    proc, trace, wall = timed_run(python, script, tmp_path, "--provoke", "exit-delay=1s")
    assert plain.returncode == proc.returncode == 0, proc.stderr
    assert proc.stdout == plain.stdout == "done\n"
    # a bound on the difference of two runs' walls would be a bet on the
    # machine's load; the trace below shows where the second went
    assert wall >= 1.0 and wall - plain_wall < 10.0, (wall, plain_wall)
    events, pid = main_events(trace)
    flip = [t for t, tid, name, d in events if name == "finalizing" and d and d[0] == "set"]
    exit_at = [t for t, tid, name, d in events if name == "thread-exit" and "how=process_exit" in d]
    assert flip and exit_at, events[-5:]
    assert exit_at[0] - flip[0] >= 0.99
    # nothing of the main thread's between the flip and the delay's end
    # but finalization's own work: the longest gap is the delay
    main = [t for t, tid, _, _ in events if tid == pid and t >= flip[0]]
    assert max(b - a for a, b in zip(main, main[1:])) >= 0.99


def test_exit_delay_after_free_sleeps_after_the_daemon_states_are_freed(python, tmp_path):
    """exit-delay-after-free=500ms: the main thread frees the daemon threads'
    thread states while finalizing, then sleeps 500 ms (at its next GIL
    release, or at exit): the gap is after its last such free."""
    proc, trace, wall = timed_run(python, os.path.join(SCENARIOS, "bpo39877.py"), tmp_path,
                                  "--provoke", "exit-delay-after-free=500ms")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "main exits\n"
    assert wall >= 0.2 + 0.5
    events, pid = main_events(trace)
    flip = min(t for t, _, name, d in events if name == "finalizing" and d and d[0] == "set")
    frees = [t for t, tid, name, _ in events if tid == pid and name == "tstate-free" and t >= flip]
    assert frees, "the main thread freed no thread state while finalizing"
    main = [t for t, tid, _, _ in events if tid == pid and t >= frees[0]]
    gaps = [(b - a, a) for a, b in zip(main, main[1:])]
    longest, at = max(gaps)
    assert longest >= 0.49 and at >= frees[0], gaps[-5:]


def test_daemon_threads_under_exit_delay_and_poison(python, tmp_path):
    """bpo-39877's reproducer, provoked as its slow_exit.patch did (and its
    freed thread states poisoned): a fixed interpreter (3.9+) exits as it
    does untraced, with notes only; 3.8 may crash (bpo-39877 is its bug),
    and then the crash is explained."""
    proc, trace = run_scenario(python, "bpo39877.py", tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = str(tmp_path / "provoked.gtr")
    provoked = subprocess.run([GILTRACE, "run", "--check", "-o", out, "--provoke", "exit-delay,poison", "--",
                               python, os.path.join(SCENARIOS, "bpo39877.py")],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
    result, _ = check_json(out)
    assert result["provoked"]["text"] == "exit-delay=1s, poison"
    if version_of(python) < (3, 9):
        if provoked.returncode != 0:
            assert result["findings"], provoked.stderr
        return
    assert provoked.returncode == 0, provoked.stderr
    assert provoked.stdout == "main exits\n"
    assert not errors(result), provoked.stderr


def test_poison_makes_a_freed_tstate_use_fault(python, extension, tmp_path):
    """use_after_delete: a native thread calls PyEval_RestoreThread with its
    own deleted thread state.  On a release build 3.9+ the freed block still
    holds plausible values and the call goes through; poisoned, it faults at
    once at an address made of the poison, and the crash is explained as
    freed-tstate-use.  (3.8 does not fault even poisoned: its RestoreThread
    path reads no pointer of the thread state it goes on to dereference;
    a debug build aborts on its own 0xdd fill, and faults when poisoned.)"""
    plain, _ = run_scenario(python, "use_after_delete.py", tmp_path, extension, check=False)
    out = str(tmp_path / "poisoned.gtr")
    env = dict(os.environ, PYTHONPATH=extension)
    poisoned = subprocess.run([GILTRACE, "run", "-o", out, "--provoke", "poison", "--", python,
                               os.path.join(SCENARIOS, "use_after_delete.py")],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    result, status = check_json(out)
    assert status == 1
    assert result["provoked"]["poison"] is True
    if version_of(python) < (3, 9):
        assert poisoned.returncode in (0, 128 + 11), poisoned.stderr
        return
    debug = python.endswith("d")
    assert plain.returncode == (128 + 6 if debug else 0), plain.stderr
    assert poisoned.returncode == 128 + 11, poisoned.stderr  # SIGSEGV
    crashes = [f for f in of(result, "freed-tstate-use") if "SIGSEGV" in f["what"]]
    assert crashes, result["findings"]
    assert "provoke=poison" in crashes[0]["what"]
    assert "0x5a5a5a5a" in crashes[0]["what"]


def test_the_provocations_are_named_everywhere(tmp_path):
    python = "/usr/bin/python3.11"
    if not os.access(python, os.X_OK):
        pytest.skip("no /usr/bin/python3.11")
    script = write_script(tmp_path, QUICK)
    proc, trace, _ = timed_run(python, script, tmp_path, "--provoke",
                               "exit-delay=200ms,exit-delay-after-free=1ms,poison,jitter=50,seed=1234")
    assert proc.returncode == 0, proc.stderr
    line = "exit-delay=200ms, exit-delay-after-free=1ms, poison, jitter=50us seed=1234"
    text = subprocess.run([GILTRACE, "report", trace], capture_output=True, text=True).stdout
    assert f"\n  provoked: {line}\n" in text
    rep = report(trace)
    assert rep["provoked"] == {"text": line, "exit_delay_ns": 200000000, "exit_delay_after_free_ns": 1000000,
                               "poison": True, "jitter_us": 50, "jitter_seed": 1234}
    page = tmp_path / "page.html"
    subprocess.run([GILTRACE, "report", "--html", str(page), trace], check=True, capture_output=True)
    assert f'<dt>provoked</dt><dd class="warn" id="provoked">{line}: not a natural run' in page.read_text()
    check = subprocess.run([GILTRACE, "check", trace], capture_output=True, text=True)
    assert f"; provoked: {line}" in check.stdout + check.stderr
    result, _ = check_json(trace)
    assert result["provoked"] == rep["provoked"]


def test_a_natural_run_says_nothing_of_provocations(tmp_path):
    python = "/usr/bin/python3.11"
    if not os.access(python, os.X_OK):
        pytest.skip("no /usr/bin/python3.11")
    proc, trace = giltrace_run(python, write_script(tmp_path, QUICK), tmp_path)
    assert proc.returncode == 0
    assert "provoked" not in report(trace)
    assert "provoked" not in check_json(trace)[0]
    assert "provoked" not in subprocess.run([GILTRACE, "report", trace], capture_output=True, text=True).stdout


def test_jitter_seed_is_recorded_and_chosen_when_not_given(tmp_path):
    python = "/usr/bin/python3.11"
    if not os.access(python, os.X_OK):
        pytest.skip("no /usr/bin/python3.11")
    script = os.path.join(SCENARIOS, "bpo39877.py")
    seeds = []
    for i in range(2):
        proc, trace, _ = timed_run(python, script, tmp_path, "--provoke", "jitter=20", name=f"j{i}.gtr")
        assert proc.returncode == 0, proc.stderr
        p = report(trace)["provoked"]
        assert p["jitter_us"] == 20 and 0 < p["jitter_seed"] < 2**32
        assert p["text"] == f"jitter=20us seed={p['jitter_seed']}"
        seeds.append(p["jitter_seed"])
    assert seeds[0] != seeds[1]
    proc, trace, _ = timed_run(python, script, tmp_path, "--provoke", f"jitter=20,seed={seeds[0]}", name="again.gtr")
    assert report(trace)["provoked"]["jitter_seed"] == seeds[0]


def test_jitter_delays_follow_the_seed(tmp_path):
    """The generator: the same seed gives the same delays, bounded by N."""
    binary = str(tmp_path / "test-provoke-rng")
    subprocess.run(["cc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I", os.path.join(ROOT, "include"), "-o",
                    binary, os.path.join(ROOT, "tests", "unit", "test-provoke-rng.c")], check=True)
    proc = subprocess.run([binary], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.endswith("ok\n"), proc.stdout


@pytest.mark.parametrize("value", ["bogus", "exit-delay=5parsecs", "jitter=2000000", "seed=3", "poison=1",
                                   "exit-delay=,poison"])
def test_a_bad_provoke_value_warns_once_and_provokes_nothing(tmp_path, value):
    python = "/usr/bin/python3.11"
    if not os.access(python, os.X_OK):
        pytest.skip("no /usr/bin/python3.11")
    trace = str(tmp_path / "t.gtr")
    env = dict(os.environ, LD_PRELOAD=SHIM, GILTRACE_OPTIONS=f"output={trace}:check=0:provoke={value}")
    proc = subprocess.run([python, "-c", QUICK], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0 and proc.stdout == "done\n"
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"giltrace: warning: GILTRACE_OPTIONS: bad provoke '{value}'")
    assert "provoked" not in report(trace)


def test_run_refuses_a_spec_that_would_break_the_options(tmp_path):
    proc = subprocess.run([GILTRACE, "run", "--provoke", "poison:output=/x", "--", "true"], capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert "--provoke" in proc.stderr
