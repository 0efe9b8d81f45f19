"""The fuzzer's inputs, outside the fuzzer (docs/fuzzing.md).

The seeds must stay traces this giltrace reads, else `make fuzz` spends its
time on the header check alone.  Each reproducer the fuzzer found, once
fixed, must stay fixed: under every reader of the CLI built by gcc with
ASan and UBSan, and under the fuzzing harness itself, whose clang UBSan
also checks what gcc's leaves out (a float converted to an integer out of
its range)."""
import glob
import json
import os
import shutil
import subprocess

import pytest

from helpers import GILTRACE, ROOT, assert_every_reader_survives

FUZZER = os.path.join(ROOT, "build", "fuzz", "fuzz-readers")
SEEDS = sorted(glob.glob(os.path.join(ROOT, "tests", "fuzz", "seeds", "*.gtr")))
CRASHES = sorted(glob.glob(os.path.join(ROOT, "tests", "fuzz", "crashes", "*.gtr")))


def test_there_are_seeds():
    assert len(SEEDS) >= 10, SEEDS


@pytest.mark.parametrize("seed", SEEDS, ids=[os.path.basename(p) for p in SEEDS])
def test_seed_is_a_readable_trace(seed):
    proc = subprocess.run([GILTRACE, "report", "--json", seed], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["events"] > 0 and result["threads"] and result["gils"], seed
    assert not any("unknown event type" in n for n in result["notes"]), result["notes"]


@pytest.mark.parametrize("reproducer", CRASHES, ids=[os.path.basename(p) for p in CRASHES])
def test_fuzzer_reproducer_survives_every_reader(tmp_path, reproducer):
    with open(reproducer, "rb") as f:
        assert_every_reader_survives(tmp_path, f.read())


@pytest.fixture(scope="module")
def fuzzer():
    """build/fuzz/fuzz-readers, built now from the current sources."""
    if not shutil.which("clang"):
        pytest.skip("clang not installed (scripts/install-deps.sh --fuzz)")
    proc = subprocess.run(["make", "-s", "build/fuzz/fuzz-readers"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return FUZZER


def test_harness_runs_seeds_and_reproducers_clean(fuzzer):
    """Every input once through every reader command, as `make fuzz` runs
    them: no sanitizer report, no leak, no unexpected exit status."""
    proc = subprocess.run([fuzzer, "-runs=1", *SEEDS, *CRASHES], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "runtime error" not in proc.stderr and "Sanitizer" not in proc.stderr, proc.stderr[-4000:]
    ran = [line for line in proc.stderr.splitlines() if line.startswith("Executed ")]
    assert len(ran) == len(SEEDS) + len(CRASHES), proc.stderr[-4000:]
