"""`make install PREFIX=... DESTDIR=...` gives a working tool: the binary, the
shim in lib/giltrace (found by `run` and by the environment-only mode), the
man page, the documentation the findings and --help point at, and bash
completion; `make uninstall` takes it all away again.
"""
import os
import re
import subprocess

import pytest

import scenario_build
from helpers import GILTRACE, ROOT, SCENARIOS

PYTHON = "/usr/bin/python3.11"   # Debian's: the one a fresh machine has


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    dest = tmp_path_factory.mktemp("destdir")
    proc = subprocess.run(["make", "-s", "install", f"DESTDIR={dest}", "PREFIX=/usr"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dest / "usr"


def test_installed_layout_and_version(installed):
    for path in ("bin/giltrace", "lib/giltrace/libgiltrace.so", "share/man/man1/giltrace.1",
                 "share/doc/giltrace/findings.md", "share/doc/giltrace/options.md",
                 "share/bash-completion/completions/giltrace"):
        assert (installed / path).is_file(), path
    assert os.access(installed / "bin/giltrace", os.X_OK)
    version = subprocess.run([str(installed / "bin/giltrace"), "--version"], capture_output=True, text=True)
    assert version.returncode == 0
    assert version.stdout == subprocess.run([GILTRACE, "version"], capture_output=True, text=True).stdout
    assert re.fullmatch(r"giltrace \d+\.\d+\.\d+( \(.*\))?\n", version.stdout), version.stdout
    # --help names the installed documentation
    help_text = subprocess.run([str(installed / "bin/giltrace"), "check", "--help"], capture_output=True,
                               text=True).stdout
    assert f"documentation: giltrace(1), and {installed}/share/doc/giltrace " in help_text, help_text


def test_installed_tool_runs_and_points_at_its_documentation(installed, tmp_path):
    """run finds the installed shim; the at-exit check of the environment-only
    mode finds the installed giltrace (not "is not there"); the findings'
    "see" line is a file that exists, with the finding's section."""
    if not os.access(PYTHON, os.X_OK):
        pytest.skip("apt-get install python3.11")
    ext = scenario_build.build_extension(PYTHON, str(tmp_path / "ext"))
    env = dict(os.environ, PYTHONPATH=ext)
    env.pop("GILTRACE_SHIM", None)
    script = os.path.join(SCENARIOS, "gilstate_after_finalize.py")
    trace = str(tmp_path / "run.gtr")
    proc = subprocess.run([str(installed / "bin/giltrace"), "run", "--check", "-o", trace, "--", PYTHON, script],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1 and proc.stdout == "main exits\n", proc.stderr
    see = re.findall(r"see (\S+)#gilstate-after-finalize", proc.stderr)
    assert see and see[0] == f"{installed}/share/doc/giltrace/findings.md", proc.stderr
    assert "## gilstate-after-finalize (error)" in open(see[0]).read()

    # environment-only: LD_PRELOAD alone; the shim runs the installed giltrace at exit
    env_only = dict(env, LD_PRELOAD=str(installed / "lib/giltrace/libgiltrace.so"),
                    GILTRACE_OPTIONS=f"output={tmp_path}/env.%p.gtr")
    proc = subprocess.run([PYTHON, script], capture_output=True, text=True, timeout=120, env=env_only)
    assert proc.returncode == 0 and proc.stdout == "main exits\n", proc.stderr
    assert "is not there" not in proc.stderr, proc.stderr
    assert "giltrace ERROR: gilstate-after-finalize" in proc.stderr, proc.stderr
    assert f"see {installed}/share/doc/giltrace/findings.md#gilstate-after-finalize" in proc.stderr


def test_man_page(installed):
    page = installed / "share/man/man1/giltrace.1"
    warnings = subprocess.run(["groff", "-man", "-ww", "-z", str(page)], capture_output=True, text=True)
    assert warnings.returncode == 0 and warnings.stderr == "", warnings.stderr
    text = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, MANWIDTH="80")).stdout
    text = re.sub(".\b", "", text)   # the terminal's bold and underline, by overstriking
    for heading in ("NAME", "SYNOPSIS", "COMMANDS", "ENVIRONMENT", "EXIT STATUS", "FILES"):
        assert heading in text
    # the page's version is the Makefile's
    makefile_version = re.search(r"^VERSION := (\S+)$", open(os.path.join(ROOT, "Makefile")).read(), re.M).group(1)
    assert f'"giltrace {makefile_version}"' in page.read_text()


@pytest.mark.parametrize("words, expected", [
    (["giltrace", "ch"], ["check"]),
    (["giltrace", "timeline", "--ar"], ["--around"]),
    (["giltrace", "timeline", "--around", ""], ["finalize", "whole"]),
    (["giltrace", "run", "--", "pytho"], None),   # the command to run: a command name
])
def test_bash_completion(installed, words, expected):
    completion = installed / "share/bash-completion/completions/giltrace"
    line = " ".join(f"'{w}'" for w in words)
    out = subprocess.run(["bash", "-c", f"source '{completion}'; COMP_WORDS=({line}); "
                          f"COMP_CWORD={len(words) - 1}; _giltrace; printf '%s\\n' \"${{COMPREPLY[@]}}\""],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    got = sorted(w for w in out.stdout.split("\n") if w)
    if expected is None:
        assert got and all(w.startswith("pytho") for w in got), got
    else:
        assert got == expected, got


def test_uninstall(installed):
    dest = installed.parent
    proc = subprocess.run(["make", "-s", "uninstall", f"DESTDIR={dest}", "PREFIX=/usr"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [p for p in installed.rglob("*") if p.is_file()] == []


HOLD_LOCK = """\
import fcntl, sys, time
with open("/var/lib/dpkg/lock-frontend", "r+") as f:
    fcntl.lockf(f, fcntl.LOCK_EX)
    print("held", flush=True)
    time.sleep(float(sys.argv[1]))
"""


@pytest.mark.parametrize("hold, limit, status", [(3, 60, 0), (20, 2, 1)])
def test_apt_wait_waits_for_a_held_lock(hold, limit, status):
    """install-deps.sh waits for another apt (a fresh machine's boot-time
    upgrades) instead of failing: scripts/apt-wait.sh returns once the lock
    is free, or fails with the fix in its message after its limit."""
    if not os.access("/var/lib/dpkg/lock-frontend", os.W_OK):
        pytest.skip("not root: dpkg's lock cannot be held here")
    holder = subprocess.Popen([PYTHON if os.access(PYTHON, os.X_OK) else "python3", "-c", HOLD_LOCK, str(hold)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        proc = subprocess.run(["sh", os.path.join(ROOT, "scripts", "apt-wait.sh")], capture_output=True, text=True,
                              timeout=120, env=dict(os.environ, APT_WAIT_SECONDS=str(limit)))
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == status, proc.stderr
    assert "another apt or dpkg is running" in proc.stderr
    if status == 0:
        assert "apt is free after" in proc.stderr
    else:
        assert "run scripts/install-deps.sh again once it is done" in proc.stderr
