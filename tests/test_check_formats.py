"""check --format junit|sarif: the findings for CI systems, next to text and
JSON.  JUnit XML fails a test case per error finding (and one per unusable,
missing or incomplete trace), as check's exit status fails the job; SARIF
2.1.0 gives each finding its rule and the source line its stack points at.
"""
import json
import os
import subprocess
import xml.etree.ElementTree as ET

import pytest

import scenario_build
from helpers import GILTRACE, SCENARIOS

PYTHON = "/usr/bin/python3.11"


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    """A trace with an error finding (bpo-36475's), a clean one, and a copy
    of the clean one cut short."""
    if not os.access(PYTHON, os.X_OK):
        pytest.skip("apt-get install python3.11")
    tmp = tmp_path_factory.mktemp("formats")
    ext = scenario_build.build_extension(PYTHON, str(tmp / "ext"))
    faulty, clean = str(tmp / "faulty.gtr"), str(tmp / "clean.gtr")
    subprocess.run([GILTRACE, "run", "-o", faulty, "--", PYTHON, os.path.join(SCENARIOS, "gilstate_after_finalize.py")],
                   capture_output=True, timeout=120, env=dict(os.environ, PYTHONPATH=ext), check=True)
    subprocess.run([GILTRACE, "run", "-o", clean, "--", PYTHON, "-c", "pass"], capture_output=True, timeout=120,
                   check=True)
    cut = str(tmp / "cut.gtr")
    data = open(clean, "rb").read()
    open(cut, "wb").write(data[:len(data) // 2])
    return faulty, clean, cut, str(tmp / "missing")


def check(fmt, *paths):
    return subprocess.run([GILTRACE, "check", "--format", fmt, *paths], capture_output=True, text=True, timeout=120)


def test_junit(traces):
    faulty, clean, cut, missing = traces
    proc = check("junit", faulty, clean)
    assert proc.returncode == 1, proc.stderr   # the same status as text: error findings
    root = ET.fromstring(proc.stdout)
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {faulty, clean}
    failures = suites[faulty].findall("testcase/failure")
    assert [f.get("type") for f in failures] == ["gilstate-after-finalize"]
    assert "PyGILState_Ensure() from gtscenario." in failures[0].text
    assert root.get("failures") == "1" and int(root.get("tests")) == sum(len(s.findall("testcase"))
                                                                         for s in suites.values())
    (ok,) = suites[clean].findall("testcase")
    assert ok.get("name") == "no error findings" and list(ok) == []
    # notes pass, with their text
    notes = [c for c in suites[faulty].findall("testcase") if c.find("failure") is None]
    assert all(c.find("system-out") is not None for c in notes)

    # a cut trace and a missing path are errors, as check's status 2 says
    proc = check("junit", clean, cut, missing)
    assert proc.returncode == 2
    root = ET.fromstring(proc.stdout)
    errors = {s.get("name"): s.find("testcase/error") for s in root.findall("testsuite")}
    assert errors[clean] is None and errors[cut] is not None and errors[missing] is not None
    assert root.get("errors") == "2" and root.get("failures") == "0"


def test_sarif(traces):
    faulty, clean, cut, missing = traces
    proc = check("sarif", faulty, clean, missing)
    assert proc.returncode == 1, proc.stderr
    log = json.loads(proc.stdout)
    assert log["version"] == "2.1.0" and len(log["runs"]) == 1
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "giltrace" and driver["version"]
    rules = [r["id"] for r in driver["rules"]]
    assert len(rules) == len(set(rules)) and "gilstate-after-finalize" in rules
    for r in driver["rules"]:
        assert r["helpUri"].endswith("/findings.md#" + r["id"])
        assert os.path.exists(r["helpUri"].removeprefix("file://").split("#")[0])
    errors = [r for r in run["results"] if r["level"] == "error"]
    (error,) = errors
    assert error["ruleId"] == "gilstate-after-finalize" and rules[error["ruleIndex"]] == error["ruleId"]
    assert error["properties"]["trace"] == faulty
    where = error["locations"][0]
    assert where["physicalLocation"]["artifactLocation"]["uri"].endswith("/tests/scenarios/gtscenario.c")
    assert where["physicalLocation"]["region"]["startLine"] > 0
    assert where["logicalLocations"][0]["kind"] == "function"
    # the missing path is the invocation's error, and the run says it was not whole
    (invocation,) = run["invocations"]
    assert not invocation["executionSuccessful"]
    assert any(missing in n["message"]["text"] for n in invocation["toolExecutionNotifications"])


def test_unknown_format_names_the_choices():
    proc = subprocess.run([GILTRACE, "check", "--format", "xml", "x.gtr"], capture_output=True, text=True)
    assert proc.returncode == 2 and "text, json, junit or sarif" in proc.stderr
