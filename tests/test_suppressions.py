"""Suppressions, as TSan's and valgrind's: a file of ID:PATTERN rules takes
findings out of check's output and exit status (counted, never shown); the
shim's suppressions= option applies it to the at-exit check of the
environment-only mode, and `run --suppressions` to run's.
"""
import json
import os
import subprocess

import pytest

import scenario_build
from helpers import GILTRACE, SCENARIOS, SHIM

PYTHON = "/usr/bin/python3.11"
SCRIPT = os.path.join(SCENARIOS, "gilstate_after_finalize.py")


@pytest.fixture(scope="module")
def ext(tmp_path_factory):
    if not os.access(PYTHON, os.X_OK):
        pytest.skip("apt-get install python3.11")
    return scenario_build.build_extension(PYTHON, str(tmp_path_factory.mktemp("ext")))


@pytest.fixture(scope="module")
def faulty(ext, tmp_path_factory):
    trace = str(tmp_path_factory.mktemp("supp") / "faulty.gtr")
    subprocess.run([GILTRACE, "run", "-o", trace, "--", PYTHON, SCRIPT], capture_output=True, timeout=120,
                   env=dict(os.environ, PYTHONPATH=ext), check=True)
    return trace


def check(trace, rules, tmp_path, *args):
    supp = tmp_path / "supp.txt"
    supp.write_text(rules)
    return subprocess.run([GILTRACE, "check", *args, "--suppressions", str(supp), trace], capture_output=True,
                          text=True, timeout=120)


def error_of(trace):
    proc = subprocess.run([GILTRACE, "check", "--json", trace], capture_output=True, text=True, timeout=120)
    (result,) = json.loads(proc.stdout)
    (f,) = [f for f in result["findings"] if f["severity"] == "error"]
    return result, f


@pytest.mark.parametrize("rule", [
    "gilstate-after-finalize:gtscenario*",   # the caller's module
    "*:gtscenario.c",                        # a source file of its stack, any finding id: the note too
    "FUNCTION",                              # the function of its first frame
])
def test_a_rule_takes_the_finding_out(faulty, tmp_path, rule):
    before, error = error_of(faulty)
    rule = rule.replace("FUNCTION", f"gilstate-after-finalize:{error['stack'][0]['function']}")
    rules = f"# a comment, then a blank line\n\n{rule}   # why: our own scenario\n"
    proc = check(faulty, rules, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 errors" in proc.stdout and " suppressed (" in proc.stdout
    assert "gilstate-after-finalize" not in proc.stdout
    (result,) = json.loads(check(faulty, rules, tmp_path, "--json").stdout)
    assert result["errors"] == 0
    # what was taken out is counted: nothing lost, nothing shown
    assert result["suppressed"] + result["notes"] == 1 + before["notes"]
    if not rule.startswith("*"):
        assert result["suppressed"] == 1   # the notes are not this rule's


def test_a_rule_that_matches_nothing_changes_nothing(faulty, tmp_path):
    proc = check(faulty, "gilstate-after-finalize:no_such_function\nfreed-tstate-use:gtscenario*\n", tmp_path)
    assert proc.returncode == 1 and "giltrace ERROR: gilstate-after-finalize" in proc.stdout
    assert "suppressed" not in proc.stdout


@pytest.mark.parametrize("rules, message", [
    ("no-such-finding:x\n", "supp.txt:1: 'no-such-finding' is not a finding id"),
    ("# ok\njust a pattern\n", "supp.txt:2: 'just a pattern' is not a rule: write ID:PATTERN"),
])
def test_a_bad_file_is_an_error_with_the_fix(faulty, tmp_path, rules, message):
    proc = check(faulty, rules, tmp_path)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    missing = subprocess.run([GILTRACE, "check", "--suppressions", str(tmp_path / "none.txt"), faulty],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "cannot read the suppressions" in missing.stderr


def test_shim_option_and_run(ext, tmp_path):
    (tmp_path / "rules.txt").write_text("gilstate-after-finalize:gtscenario*\n")
    env = dict(os.environ, PYTHONPATH=ext, LD_PRELOAD=SHIM,
               GILTRACE_OPTIONS=f"output={tmp_path}/env.%p.gtr:suppressions=rules.txt")
    proc = subprocess.run([PYTHON, SCRIPT], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == "main exits\n"
    assert proc.stderr == "", proc.stderr   # suppressed: nothing to say
    unsuppressed = subprocess.run([PYTHON, SCRIPT], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                                  env=dict(env, GILTRACE_OPTIONS=f"output={tmp_path}/env2.%p.gtr"))
    assert "giltrace ERROR: gilstate-after-finalize" in unsuppressed.stderr
    run = subprocess.run([GILTRACE, "run", "--check", "--suppressions", str(tmp_path / "rules.txt"), "-o",
                          str(tmp_path / "run.gtr"), "--", PYTHON, SCRIPT], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, PYTHONPATH=ext))
    assert run.returncode == 0 and "ERROR" not in run.stderr, run.stderr
