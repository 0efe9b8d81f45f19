"""pytest-giltrace: a pytest session under giltrace's shim, each finding
attributed to the test that was running.  See README.md.

How: `--giltrace[=DIR]` makes pytest start again with libgiltrace.so in
LD_PRELOAD (a preload must be there when the process starts), tracing into
DIR.  In that process the plugin calls the shim's giltrace_test_mark() at
each test's start and end (through ctypes), and after each test runs
`giltrace check --json` on its own trace, which is written in place, for the
error findings made during that test.  The processes a test starts are
traced into DIR too and marked with the test (GILTRACE_TEST in their
environment; a fork child inherits its parent's mark): the traces of those
that ended are checked after each test, and their error findings fail the
test that started them.
"""
import ctypes
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

_UNDER_SHIM = "GILTRACE_PYTEST_DIR"   # set in the environment of the session run again


def pytest_addoption(parser):
    group = parser.getgroup("giltrace", "giltrace: GIL handoffs and finalization")
    group.addoption("--giltrace", nargs="?", const="giltrace-traces", default=None, metavar="DIR",
                    help="run the session under giltrace's shim, traces in DIR (default giltrace-traces)")
    group.addoption("--giltrace-findings", choices=("fail", "warn"), default="fail",
                    help="what an error finding made during a test does to it (default fail)")


def _giltrace():
    path = os.environ.get("GILTRACE") or shutil.which("giltrace")
    if not path or not os.access(path, os.X_OK):
        raise pytest.UsageError("--giltrace: no giltrace program: put it on PATH (make install) or set "
                                "GILTRACE=/path/to/giltrace")
    return os.path.realpath(path)


def _shim(giltrace):
    here = os.path.dirname(giltrace)
    for path in (os.environ.get("GILTRACE_SHIM"), os.path.join(here, "libgiltrace.so"),
                 os.path.join(here, "..", "lib", "giltrace", "libgiltrace.so")):
        if path and os.path.isfile(path):
            return os.path.realpath(path)
    raise pytest.UsageError(f"--giltrace: no libgiltrace.so beside {giltrace}; set GILTRACE_SHIM to its path")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    folder = config.getoption("giltrace")
    if folder is None or os.environ.get(_UNDER_SHIM):
        return None
    folder = os.path.abspath(folder)
    giltrace = _giltrace()
    shim = _shim(giltrace)
    os.makedirs(folder, exist_ok=True)
    env = dict(os.environ)
    env["LD_PRELOAD"] = shim + (":" + env["LD_PRELOAD"] if env.get("LD_PRELOAD") else "")
    # the user's options first: the plugin's own win; findings after the
    # last test are the shim's to report, at the exit, with exit status 1
    options = [o for o in env.get("GILTRACE_OPTIONS", "").split(":") if o]
    options += [f"output={folder}/%p.gtr", "check=1", "exitcode=1", f"giltrace={giltrace}"]
    env["GILTRACE_OPTIONS"] = ":".join(options)
    env[_UNDER_SHIM] = folder
    env["GILTRACE"] = giltrace
    args = list(config.invocation_params.args)
    if args != sys.argv[1:]:   # pytest.main() inside another program: not ours to replace
        raise pytest.UsageError("--giltrace starts pytest again under the shim: run it from the command line "
                                "(pytest --giltrace), not through pytest.main() inside another program")
    sys.stdout.flush()
    sys.stderr.flush()
    os.chdir(config.invocation_params.dir)
    os.execve(sys.executable, [sys.executable, "-m", "pytest", *args], env)


class _Session:
    def __init__(self, folder):
        self.folder = folder
        self.giltrace = os.environ["GILTRACE"]
        self.trace = os.path.join(folder, f"{os.getpid()}.gtr")
        lib = ctypes.CDLL(os.environ["LD_PRELOAD"].split(":")[0])
        self.mark = lib.giltrace_test_mark
        self.mark.argtypes = [ctypes.c_char_p, ctypes.c_int]
        self.mark.restype = ctypes.c_int
        self.number = {}    # nodeid -> its number in the trace (giltrace_test_mark's)
        self.seen = set()   # findings reported already: (id, at_ns, tid)
        self.children_checked = set()  # traces of ended child processes, read
        self.late = []      # child findings whose test had ended: (nodeid, finding, trace)
        self.running = []   # child traces still being written at the end
        # traces of earlier sessions in the same folder are not this one's
        self.earlier = set(os.listdir(folder))
        # the processes the tests start are traced too, quietly: their
        # status and stderr stay theirs (giltrace check DIR reads them)
        options = [o for o in os.environ.get("GILTRACE_OPTIONS", "").split(":")
                   if o and not o.startswith(("check=", "exitcode="))]
        os.environ["GILTRACE_OPTIONS"] = ":".join(options + ["check=0"])

    def findings_of(self, nodeid):
        """The error findings made while nodeid ran, as check --json gives them."""
        if not os.path.exists(self.trace):
            return []
        proc = subprocess.run([self.giltrace, "check", "--json", self.trace], capture_output=True, text=True)
        try:
            (result,) = json.loads(proc.stdout)
        except ValueError:
            return []
        found = []
        for f in result.get("findings", []):
            thread = f.get("thread") or {}
            key = (f["id"], f["at_ns"], thread.get("tid"))
            test = f.get("test") or {}
            if f["severity"] == "error" and test.get("when") == "during" and \
                    test.get("number") == self.number.get(nodeid) and key not in self.seen:
                self.seen.add(key)
                found.append(f)
        return found

    def children_findings_of(self, nodeid):
        """The error findings of the processes started during nodeid that
        have ended, as (finding, trace); those of an earlier test's
        processes are kept for the summary."""
        found = []
        for name in sorted(os.listdir(self.folder)):
            path = os.path.join(self.folder, name)
            if not re.fullmatch(r"\d+\.gtr", name) or name in self.earlier or path == self.trace or \
                    path in self.children_checked:
                continue
            proc = subprocess.run([self.giltrace, "check", "--json", path], capture_output=True, text=True)
            try:
                (result,) = json.loads(proc.stdout)
            except ValueError:
                continue
            if result.get("truncated") and _alive(result.get("pid")):
                if nodeid is None:
                    self.running.append(path)
                continue   # still running: looked at again after the next test
            self.children_checked.add(path)
            for f in result.get("findings", []):
                test = f.get("test") or {}
                if f["severity"] != "error" or not test.get("id"):
                    continue
                if test["id"] == nodeid:
                    found.append((f, path))
                else:
                    self.late.append((test["id"], f, path))
        return found

    def text_of(self, findings, children=()):
        lines = [f"giltrace ERROR: {f['id']}: {f['title']}\n"
                 f"    thread {_thread_label(f)} {f['what']}\n"
                 f"    (trace {self.kept})" for f in findings]
        lines += [f"giltrace ERROR: {f['id']}: {f['title']}\n"
                  f"    in process {os.path.basename(path)[:-4]}, started by this test: thread {_thread_label(f)} "
                  f"{f['what']}\n"
                  f"    (trace {path})" for f, path in children]
        return "\n".join(lines)

    def keep(self, nodeid):
        """The session's trace, linked as DIR/<test id>.gtr (a long id cut,
        with a hash of the whole so that two stay apart)."""
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")
        if len(name) > 120:
            name = name[:120] + "-" + hashlib.sha1(nodeid.encode()).hexdigest()[:10]
        self.kept = os.path.join(self.folder, name + ".gtr")
        if not os.path.exists(self.kept):
            os.link(self.trace, self.kept)
        return self.kept


def _alive(pid):
    try:
        os.kill(pid, 0)
    except (OSError, TypeError):
        return False
    return True


def _thread_label(finding):
    thread = finding.get("thread") or {}
    if thread.get("name"):
        return f"{thread['name']} ({thread.get('tid', '?')})"
    return str(thread.get("tid", "?"))


def pytest_configure(config):
    folder = os.environ.get(_UNDER_SHIM)
    if config.getoption("giltrace") is not None and folder:
        config._giltrace = _Session(folder)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    session = getattr(item.config, "_giltrace", None)
    if session:
        session.number[item.nodeid] = session.mark(item.nodeid.encode(), 1)
        os.environ["GILTRACE_TEST"] = item.nodeid   # for the processes it starts
    yield
    if session:
        os.environ.pop("GILTRACE_TEST", None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    session = getattr(item.config, "_giltrace", None)
    if not session or call.when != "teardown":
        return
    session.mark(item.nodeid.encode(), 0)
    findings = session.findings_of(item.nodeid)
    children = session.children_findings_of(item.nodeid)
    if not findings and not children:
        return
    session.kept = session.keep(item.nodeid) if findings else session.trace
    text = session.text_of(findings, children)
    if item.config.getoption("giltrace_findings") == "warn":
        item.warn(pytest.PytestWarning(text))
        return
    report = outcome.get_result()
    report.outcome = "failed"
    report.longrepr = text


def pytest_sessionfinish(session, exitstatus):
    state = getattr(session.config, "_giltrace", None)
    if not state:
        return
    state.children_findings_of(None)   # the processes that ended after their test
    if state.late and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_giltrace", None)
    for nodeid, f, path in session.late if session else ():
        terminalreporter.write_line(f"giltrace ERROR: {f['id']} in a process started by {nodeid}, after that "
                                    f"test ended: thread {_thread_label(f)} {f['what']} (trace {path})", red=True)
    for path in session.running if session else ():
        terminalreporter.write_line(f"giltrace: not checked: the process of {path} was still running when the "
                                    f"session ended (giltrace check {path} once it has)", yellow=True)


def pytest_report_header(config):
    session = getattr(config, "_giltrace", None)
    if session:
        return f"giltrace: tracing into {session.trace} ({session.giltrace})"
    return None
