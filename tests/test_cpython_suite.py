"""CPython's own regression tests give the same results traced and untraced.

The part of tests/cpython/compare.py that fits `make check` on 2 cores (the
whole matrix, every module on every interpreter, is `make check-cpython`,
about an hour; its last result is in docs/cpython-tests.md):

  - on every interpreter, the test cases that the shim's own footprint can
    break: test_subprocess's test_pass_fds_redirected (the child must see no
    descriptor but those passed: the trace's own descriptor showed up there)
    and test_threading's ThreadJoinOnShutdown (children whose stderr must
    stay empty while daemon threads are ended at exit: the shim's at-exit
    notes showed up there) and SubinterpThreadingTests (every subinterpreter
    gave a false freed-tstate-use error on 3.13), and cases whose processes
    crash on purpose and compare their stderr (test_faulthandler's
    test_sigsegv and test_sigabrt, test_subprocess's test_run_abort: the
    shim's crash handler must record them and stay invisible); a few
    seconds each;
  - the whole of test_threading on two interpreters: Debian's static 3.11
    (what most users have; the shim sees only pthread calls there) and the
    newest pyenv build (3.13: per-interpreter GILs, subinterpreters, stop-
    the-world finalization), about a minute each side;
  - the harness itself: a line the shim prints is caught.

Each comparison fails on a differing test case, an error finding in the
traces, or a line the shim printed (see compare.py).
"""
import os
import sys

import pytest

from helpers import GILTRACE, INTERPRETERS, SHIM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpython"))
import compare  # noqa: E402

# (module, regrtest -m patterns, test ids that must have run)
TARGETED = [
    ("test_subprocess", ["test.test_subprocess.POSIXProcessTestCase.test_pass_fds_redirected"],
     ["test.test_subprocess.POSIXProcessTestCase.test_pass_fds_redirected"]),
    ("test_threading", ["test.test_threading.ThreadJoinOnShutdown.*",
                        "test.test_threading.SubinterpThreadingTests.*"],
     ["test.test_threading.ThreadJoinOnShutdown.test_4_daemon_threads",
      "test.test_threading.ThreadJoinOnShutdown.test_1_join_on_shutdown",
      "test.test_threading.SubinterpThreadingTests.test_threads_join"]),
]
WHOLE_MODULE_ON = ("debian-3.11", "pyenv-3.13")
# Cases whose processes die of a fatal signal on purpose and compare their
# stderr: the shim's crash handler records the crash and stays invisible.
CRASHING = ["test.test_faulthandler.FaultHandlerTests.test_sigsegv",
            "test.test_faulthandler.FaultHandlerTests.test_sigabrt",
            "test.test_subprocess.POSIXProcessTestCase.test_run_abort"]


def options(*extra):
    return compare.parse_args(["--shim", SHIM, "--giltrace", GILTRACE, "--reruns", "2", "-q", *extra])


def needs_test_package(python):
    testdir = compare.test_package_dir(python)
    if testdir is None:
        pytest.skip(f"{python} has no `test` package (Debian: scripts/install-deps.sh --tests "
                    f"installs libpython3.11-testsuite)")
    return testdir


def assert_identical(res):
    assert res.ok(), "traced run differs from untraced:\n" + compare.describe(res)


@pytest.mark.parametrize("module,patterns,must_run", TARGETED, ids=[t[0] for t in TARGETED])
def test_targeted_cases_identical(python, module, patterns, must_run, tmp_path):
    needs_test_package(python)
    opts = options()
    res = compare.compare_module(compare.label_of(python), python, module, opts, str(tmp_path), patterns)
    untraced, traced = res.runs[0], res.runs[1]
    for test_id in must_run:   # never vacuous: the cases ran on both sides
        assert test_id in untraced.results, compare.describe(res) + "\n" + untraced.output[-3000:]
        assert test_id in traced.results, compare.describe(res) + "\n" + traced.output[-3000:]
    assert traced.traces > 0, "the traced run left no trace: was the shim preloaded?"
    assert_identical(res)


@pytest.mark.parametrize("python", [p for p in INTERPRETERS if p.id in WHOLE_MODULE_ON])
def test_threading_module_identical(python, tmp_path):
    needs_test_package(python)
    res = compare.compare_module(compare.label_of(python), python, "test_threading", options(), str(tmp_path))
    assert res.cases > 100, compare.describe(res) + "\n" + res.runs[0].output[-3000:]
    assert res.runs[1].traces > 0
    assert_identical(res)


def test_crashing_cases_identical(python, tmp_path):
    needs_test_package(python)
    for module in ("test_faulthandler", "test_subprocess"):
        patterns = [c for c in CRASHING if c.startswith(f"test.{module}.")]
        res = compare.compare_module(compare.label_of(python), python, module, options(), str(tmp_path / module),
                                     patterns)
        untraced, traced = res.runs[0], res.runs[1]
        for test_id in patterns:
            assert untraced.results.get(test_id) == "ok", compare.describe(res) + "\n" + untraced.output[-3000:]
        # the crashes were recorded (the handler ran), and changed nothing
        assert traced.crashes > 0, compare.describe(res)
        assert_identical(res)


def test_harness_catches_shim_output(tmp_path):
    """A 'giltrace:' line fails the comparison even when every case passes.

    A bad option makes the real shim print one warning line per process
    (README: "A bad key or value prints one `giltrace: warning:` line")."""
    python = "/usr/bin/python3.11"
    if not os.access(python, os.X_OK):
        pytest.skip(f"{python} not installed (apt-get install python3.11)")
    needs_test_package(python)
    opts = options("--extra-options", "no_such_option=1")
    res = compare.compare_module("debian-3.11", python, "test_queue", opts, str(tmp_path),
                                 ["test.test_queue.PyQueueTest.test_basic"])
    assert res.runs[0].results.get("test.test_queue.PyQueueTest.test_basic") == "ok"
    assert not res.differences
    assert any("giltrace: warning:" in line for line in res.shim_lines()), compare.describe(res)
    assert not res.ok()


def test_verdict_counts_flaky_only_when_untraced_varies_too():
    assert compare.verdict(["ok", "ok", "ok"], ["failure", "ok", "ok"]) == "differs"
    assert compare.verdict(["ok", "failure", "ok"], ["failure", "ok", "ok"]) == "flaky"
    assert compare.verdict(["failure", "ok"], ["ok", "ok"]) == "flaky"
    assert compare.verdict(["ok"], ["missing"]) == "differs"
