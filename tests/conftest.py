"""The fixtures of giltrace's integration tests (helpers.py has the rest).

Interpreters are discovered at test time (helpers.INTERPRETERS): each one
absent is a visible skip with the reason (pytest -rs).
"""
import os
import subprocess

import pytest

import scenario_build
from helpers import GILTRACE, GILTRACE_SAN, INTERPRETERS, SHIM, assert_recorded, report, write_script


@pytest.fixture(params=INTERPRETERS)
def python(request):
    return request.param


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory):
    """Where the test scenarios' C code is built, once per interpreter."""
    return str(tmp_path_factory.mktemp("scenario-builds"))


@pytest.fixture
def extension(python, build_dir):
    """The folder holding gtscenario built for `python` (tests/scenarios)."""
    return scenario_build.build_extension(python, build_dir)


@pytest.fixture(scope="session", autouse=True)
def built():
    for path in (GILTRACE, GILTRACE_SAN, SHIM):
        if not os.path.exists(path):
            pytest.exit(f"{path} is missing: run 'make check' (it builds first)", 2)


@pytest.fixture(scope="session")
def simple_trace(tmp_path_factory):
    """A trace of three threads summing, under Debian's python3.11."""
    python = "/usr/bin/python3.11"
    if not os.access(python, os.X_OK):
        pytest.skip(f"{python} not installed (apt-get install python3.11)")
    tmp = tmp_path_factory.mktemp("simple")
    script = write_script(tmp, "import threading\nts=[threading.Thread(target=sum, args=(range(300000),))"
                               " for _ in range(3)]\n[t.start() for t in ts]; [t.join() for t in ts]\n")
    trace = tmp / "t.gtr"
    subprocess.run([GILTRACE, "run", "-o", str(trace), "--", python, script], check=True, timeout=60,
                   capture_output=True)
    assert_recorded(report(str(trace)), workers=3)
    return trace
