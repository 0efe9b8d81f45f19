"""PEP 788 (CPython 3.15): interpreter guards and thread-state tokens, misused
on purpose from C (tests/scenarios/gtpep788.c) on every interpreter that has
them.  None here does (3.15 is supported from its source alone, README.md):
each test is a skip saying so, and the detectors are tested on hand-made
traces in tests/unit/test-detect.c (guard-never-closed,
tstate-release-unbalanced, ensure-refused-at-exit).  The shim's wrappers of
these calls are not exported (a program that looks them up on 3.14 must not
find them), so they are seen from C, not through ctypes.
"""
import os
import subprocess

import pytest

import scenario_build
from helpers import GILTRACE, SCENARIOS, check_json, of, write_script

HAS_PEP788 = "import ctypes, sys; sys.exit(not hasattr(ctypes.pythonapi, 'PyInterpreterGuard_FromCurrent'))"


@pytest.fixture
def gtpep788(python, build_dir):
    """The folder holding gtpep788 built for `python`, or a skip."""
    if subprocess.run([python, "-c", HAS_PEP788], capture_output=True).returncode != 0:
        pytest.skip(f"{python} does not export PEP 788's PyInterpreterGuard_FromCurrent (3.15+)")
    return scenario_build.build_extension(python, build_dir, os.path.join(SCENARIOS, "gtpep788.c"))


def traced(python, folder, tmp_path, code, *args):
    trace = str(tmp_path / "pep788.gtr")
    proc = subprocess.run([GILTRACE, "run", *args, "-o", trace, "--", python, write_script(tmp_path, code)],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=folder))
    return proc, trace


def test_guard_left_open_hangs_finalization(python, gtpep788, tmp_path):
    proc, trace = traced(python, gtpep788, tmp_path, "import gtpep788\nprint(hex(gtpep788.guard_left_open()))\n",
                         "--timeout", "5")
    assert proc.returncode == 124 and proc.stdout.startswith("0x"), proc.stderr
    result, _ = check_json(trace)
    (f,) = of(result, "guard-never-closed")
    assert f["call"]["function"] == "PyInterpreterGuard_FromCurrent"
    assert f["call"]["caller_location"].startswith("gtpep788.")
    assert proc.stdout.strip() in f["what"]


def test_release_one_too_many(python, gtpep788, tmp_path):
    proc, trace = traced(python, gtpep788, tmp_path, "import gtpep788\ngtpep788.release_twice()\n")
    assert proc.stdout == "released once\n" and proc.returncode != 0, proc.stderr
    result, _ = check_json(trace)
    (f,) = of(result, "tstate-release-unbalanced")
    assert f["call"]["function"] == "PyThreadState_Release"
    assert f["call"]["caller_location"].startswith("gtpep788.")
