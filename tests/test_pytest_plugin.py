"""The pytest plugin (pytest-giltrace/), with Debian's pytest: installed with
pip from the checkout, `pytest --giltrace=DIR` traces the session, fails the
test during which an error finding was made (here a thread state used
after its own PyThreadState_DeleteCurrent), keeps its trace named by the
test id, leaves the clean tests alone, and the finding that finalization
makes after the last test is reported at the exit, attributed so, with
exit status 1.  The processes a test starts (an exec'd python, a fork
child) are traced and their findings fail the test that started them.
"""
import json
import os
import shutil
import subprocess

import pytest

import scenario_build
from helpers import GILTRACE, ROOT, SHIM

PYTHON = "/usr/bin/python3"     # Debian's, with python3-pytest

TESTS = '''\
import os, sys
import gtscenario


def test_clean_before():
    assert sum(range(10)) == 45


def test_uses_a_deleted_thread_state():
    gtscenario.use_after_delete()   # freed-tstate-use, while this test runs


def test_clean_after():
    pass


class WakeAtExit:
    """Wakes a native thread that calls PyGILState_Ensure once
    finalization clears this module (gilstate-after-finalize, at exit)."""
    def __init__(self):
        self.wake = gtscenario.wake_native_waiter_and_wait

    def __del__(self):
        self.wake(0.3)


def test_arms_an_exit_finding():
    gtscenario.start_native_waiter()
    global _trigger
    _trigger = WakeAtExit()
'''


CHILD_TESTS = '''\
import os, subprocess, sys


def test_clean():
    pass


def test_runs_a_faulty_python():
    subprocess.run([sys.executable, "-c", "import gtscenario; gtscenario.use_after_delete()"], check=True)


def test_forks_a_faulty_child():
    pid = os.fork()
    if pid == 0:
        import gtscenario
        gtscenario.use_after_delete()
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0


def test_clean_after():
    subprocess.run([sys.executable, "-c", "pass"], check=True)
'''


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """The plugin pip-installed from the checkout into a folder of its own."""
    if subprocess.run([PYTHON, "-c", "import pytest"], capture_output=True).returncode:
        pytest.skip("apt-get install python3-pytest")
    target, source = tmp_path_factory.mktemp("site"), tmp_path_factory.mktemp("source") / "pytest-giltrace"
    shutil.copytree(os.path.join(ROOT, "pytest-giltrace"), source)   # setuptools builds in the source tree
    proc = subprocess.run([PYTHON, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps",
                           "--target", str(target), str(source)], capture_output=True, text=True, timeout=300,
                          cwd=source.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return str(target)


def run_session(plugin, tmp_path, *args, tests=TESTS):
    ext = scenario_build.build_extension(os.path.realpath(PYTHON), str(tmp_path / "ext"))
    (tmp_path / "test_session.py").write_text(tests)
    env = dict(os.environ, PYTHONPATH=f"{plugin}:{ext}", GILTRACE=GILTRACE, GILTRACE_SHIM=SHIM)
    env.pop("LD_PRELOAD", None)
    return subprocess.run([PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args, "test_session.py"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)


def test_a_finding_fails_the_test_that_made_it(plugin, tmp_path):
    proc = run_session(plugin, tmp_path, "--giltrace=traces")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "4 passed, 1 error" in proc.stdout, proc.stdout   # its call passed, its teardown failed
    assert "ERROR at teardown of test_uses_a_deleted_thread_state" in proc.stdout
    assert "freed-tstate-use" in proc.stdout
    kept = tmp_path / "traces" / "test_session.py_test_uses_a_deleted_thread_state.gtr"
    assert kept.exists()
    # the session's trace attributes it; the others are clean
    result = json.loads(subprocess.run([GILTRACE, "check", "--json", str(kept)], capture_output=True,
                                       text=True).stdout)[0]
    by_test = {}
    for f in result["findings"]:
        if f["severity"] == "error":
            by_test.setdefault((f["test"]["id"], f["test"]["when"]), []).append(f["id"])
    assert by_test[("test_session.py::test_uses_a_deleted_thread_state", "during")] == ["freed-tstate-use"]
    # finalization's finding, after the last test: reported at the exit, so attributed
    assert by_test[("test_session.py::test_arms_an_exit_finding", "after-last")] == ["gilstate-after-finalize"]
    assert "giltrace ERROR: gilstate-after-finalize" in proc.stderr
    assert "at exit, after the last test (test_session.py::test_arms_an_exit_finding)" in proc.stderr
    assert not [k for k in by_test if k[0] in ("test_session.py::test_clean_before",
                                                "test_session.py::test_clean_after")]


def test_warn_mode_and_no_option(plugin, tmp_path):
    warned = run_session(plugin, tmp_path, "--giltrace=traces", "--giltrace-findings=warn")
    assert "4 passed" in warned.stdout and "freed-tstate-use" in warned.stdout, warned.stdout
    assert warned.returncode == 1   # the exit finding still fails the session
    plain = run_session(plugin, tmp_path)   # the plugin installed, not asked for: nothing traced
    assert plain.returncode == 0 and "4 passed" in plain.stdout, plain.stdout + plain.stderr
    assert "giltrace" not in plain.stdout + plain.stderr


def test_findings_of_started_processes_fail_their_test(plugin, tmp_path):
    proc = run_session(plugin, tmp_path, "--giltrace=traces", tests=CHILD_TESTS)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "ERROR at teardown of test_runs_a_faulty_python" in proc.stdout, out
    assert "ERROR at teardown of test_forks_a_faulty_child" in proc.stdout, out
    assert "4 passed, 2 errors" in proc.stdout, out
    assert proc.stdout.count("started by this test") == 2, out
    # each child's own trace names the test it ran in
    by_test = {}
    for name in os.listdir(tmp_path / "traces"):
        result = json.loads(subprocess.run([GILTRACE, "check", "--json", str(tmp_path / "traces" / name)],
                                           capture_output=True, text=True).stdout)[0]
        for f in result["findings"]:
            if f["severity"] == "error":
                by_test.setdefault(f["test"]["id"], []).append(f["id"])
    assert by_test == {"test_session.py::test_runs_a_faulty_python": ["freed-tstate-use"],
                       "test_session.py::test_forks_a_faulty_child": ["freed-tstate-use"]}, by_test
    # a second session into the same folder reads only its own traces
    again = run_session(plugin, tmp_path, "--giltrace=traces", tests=CHILD_TESTS)
    assert again.returncode == 1 and "4 passed, 2 errors" in again.stdout, again.stdout + again.stderr
    assert again.stdout.count("started by this test") == 2, again.stdout
