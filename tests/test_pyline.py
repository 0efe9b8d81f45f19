"""The shim's line-table decoder (shim/pyline.c) gives, for every
instruction of every code object, the line the interpreter itself gives
(PyCode_Addr2Line through ctypes), on every interpreter present: the three
table formats (3.8/3.9 co_lnotab, 3.10 co_linetable, 3.11+ locations),
tricky sources (jumps back, gaps over 127 lines, 70,000-line gaps, one line
of more than 255 bytes of code) and a part of each standard library.  The
decoder runs under ASan+UBSan, and each table is also read cut short.
"""
import os
import subprocess

import pytest

from helpers import BUILD, FREE_THREADED, INTERPRETERS, ROOT

CASES = os.path.join(ROOT, "tests", "support", "pyline_cases.py")
DECODER_TEST = os.path.join(BUILD, "san", "test-pyline")


@pytest.mark.parametrize("python", INTERPRETERS + FREE_THREADED)
def test_lines_match_the_interpreter(python, tmp_path):
    if not os.path.exists(DECODER_TEST):
        pytest.fail(f"{DECODER_TEST} is missing: run 'make check' (it builds first)")
    cases = tmp_path / "cases.txt"
    with open(cases, "w") as out:
        gen = subprocess.run([python, CASES], stdout=out, stderr=subprocess.PIPE, text=True, timeout=600,
                             env=dict(os.environ, NLIB="60"))
    assert gen.returncode == 0, gen.stderr
    with open(cases) as cin:
        proc = subprocess.run([DECODER_TEST], stdin=cin, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = proc.stdout.strip().splitlines()[-1]
    fields = dict(kv.split("=") for kv in summary.split())
    assert fields["mismatches"] == "0", proc.stdout[-4000:]
    assert int(fields["tables"]) > 1000 and int(fields["checks"]) > 30000, summary
