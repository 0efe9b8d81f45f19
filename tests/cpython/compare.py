#!/usr/bin/env python3
"""Run CPython's own regression tests untraced and traced, and compare them.

The promise checked here (DESIGN.md, "quality bars"): the traced program
notices nothing.  For each interpreter and each test module, `python -m test`
runs twice in the same way, once without the shim and once with it preloaded
by environment only (LD_PRELOAD=libgiltrace.so,
GILTRACE_OPTIONS=output=<folder>/%p.gtr, every other option at its default),
so every python process the tests start is traced as a user's CI would trace
it.  The comparison fails on

  - any test case whose result differs (ok, failure, error, skipped,
    expected-failure, unexpected-success, or missing on one side), and any
    difference in regrtest's verdict for the module (SUCCESS, FAILURE,
    ENV CHANGED, a crashed or timed-out worker...);
  - any error finding of `giltrace check --json` over the traces;
  - any line the shim printed ("giltrace: ..." or "==PID== giltrace ERROR:")
    in the run's output or in the output the test cases captured.

Per-test results come from regrtest's --junit-xml (3.8+), which names each
test case by its unittest id.  Its result class does not name failing
subtests nor errors in setUpClass/setUpModule, so the verbose run's
"FAIL: test (id) (params)" headers are read as well: a subtest failure is the
case "id (params)".

A test that differs is rerun, on both sides, `--reruns` times (only the cases
that differed, with regrtest's -m; the whole module when only the module's
verdict differed).  A difference stands when the traced side produced a
result the untraced side never did, over all runs: a test that fails now and
then untraced too (flaky on its own) is then reported as flaky, with what was
rerun, not hidden and not failed.

Usage (standalone; `make check-cpython` runs the whole matrix):

    tests/cpython/compare.py                      # every interpreter, every module
    tests/cpython/compare.py -p /usr/bin/python3.11 -t test_threading \\
        --match 'test.test_threading.ThreadJoinOnShutdown.*'

Exit status: 0 identical everywhere, 1 a difference, finding or shim line,
2 usage error or nothing could run.
"""
import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_SHIM = os.path.join(ROOT, "build", "libgiltrace.so")
DEFAULT_GILTRACE = os.path.join(ROOT, "build", "giltrace")

# The modules issue 10 names: threads, processes, signals, finalization and
# the C API, where a GIL or exit-path shim could change behaviour.
DEFAULT_MODULES = [
    "test_threading", "test_thread", "test_threadsignals", "test_concurrent_futures",
    "test_subprocess", "test_gc", "test_atexit", "test_signal", "test_faulthandler",
    "test_queue", "test_capi",
]

# What the shim prints: "giltrace: warning: ..." and the sanitizer-style
# A crash finding says that a process died of a fatal signal, which CPython's
# tests make happen on purpose (test_faulthandler, test_subprocess's abort,
# test_concurrent_futures' crashing workers): it is the program's doing,
# whether traced or not, and the test results' comparison says whether the
# shim changed anything.  They are counted, not failed.  A crash the
# detectors explain (freed-tstate-use) stays an error finding.
CRASH_FINDINGS = {"crash", "crash-at-exit"}
# Findings that explain such a crash as CPython's own design: exit-lock-held
# with a crash in the same process is Py_FatalError("could not acquire lock
# ... possibly due to daemon threads", bpo-23309), which test_io's
# test_daemon_threads_shutdown_std*_deadlock provoke on purpose.  Without
# a crash beside it, it stays an error finding.
CRASH_EXPLAINED_BY_DESIGN = {"exit-lock-held"}

# finding blocks "==PID== giltrace ERROR: ..." (NOTE, WARNING alike).
SHIM_LINE = re.compile(r"giltrace(?::| [A-Z]+:)")
# The header unittest prints above each failure's traceback (verbose run):
#   FAIL: test_x (test.test_m.Class.test_x) (i=1)     3.11+
#   FAIL: test_x (test.test_m.Class) (i=1)            3.8-3.10
FAIL_HEADER = re.compile(r"^(FAIL|ERROR): (\S+) \(([^()\s]+)\)(?: \((.*)\))?\s*$")
SEPARATOR = "=" * 70

# Per-module keys beside the test ids (a test id never starts with "<").
KEY_VERDICT = "<regrtest verdict>"
KEY_COUNTS = "<unittest counts>"


def pyenv_root():
    root = os.environ.get("PYENV_ROOT")
    if not root and shutil.which("pyenv"):
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
    return root or os.path.expanduser("~/.pyenv")


def discover_interpreters():
    """(label, path) of the interpreters tests/conftest.py knows, those present."""
    found = []
    for label, path in (("debian-3.11", "/usr/bin/python3.11"),
                        ("debian-3.11-dbg", "/usr/bin/python3.11d")):
        if os.access(path, os.X_OK):
            found.append((label, path))
    root = pyenv_root()
    for minor in range(8, 14):
        paths = [p for p in glob.glob(f"{root}/versions/3.{minor}.*/bin/python3.{minor}")
                 if re.search(rf"/versions/3\.{minor}\.\d+/", p)]
        if paths:
            key = lambda p: tuple(int(x) for x in re.search(r"/versions/(\d+)\.(\d+)\.(\d+)/", p).groups())
            found.append((f"pyenv-3.{minor}", max(paths, key=key)))
    return found


def label_of(python):
    for label, path in discover_interpreters():
        if os.path.realpath(path) == os.path.realpath(python):
            return label
    return os.path.basename(python)


def test_package_dir(python):
    """Folder of the interpreter's `test` package, or None if not installed."""
    proc = subprocess.run([python, "-c", "import os, test.libregrtest; print(os.path.dirname(test.__file__))"],
                          capture_output=True, text=True, env=clean_env(), timeout=120)
    return proc.stdout.strip() if proc.returncode == 0 else None


def module_installed(testdir, module):
    return (os.path.isfile(os.path.join(testdir, module + ".py"))
            or os.path.isfile(os.path.join(testdir, module, "__init__.py")))


def clean_env():
    """The caller's environment without any giltrace or python configuration."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "GILTRACE_OPTIONS") and not k.startswith("PYTHON")}
    env["LC_ALL"] = env.get("LC_ALL", "C.UTF-8")
    return env


# --- one regrtest run -------------------------------------------------------

class Run:
    """One `python -m test` run of one module, untraced or traced."""

    def __init__(self, traced):
        self.traced = traced
        self.results = {}        # test id (or per-module key) -> status
        self.wall = 0.0          # seconds
        self.returncode = None
        self.output = ""
        self.shim_lines = []     # lines the shim printed
        self.findings = []       # error findings: (trace, id, what)
        self.crashes = 0         # crash findings (CRASH_FINDINGS)
        self.traces = 0
        self.unusable = []       # traces `check` could not use: (trace, why)
        self.truncated = 0


def status_of(testcase):
    """A junit <testcase>'s result, in regrtest's RegressionTestResult terms."""
    tags = {child.tag for child in testcase}
    for tag, status in (("error", "error"), ("failure", "failure"), ("skipped", "skipped"),
                        ("output", "expected-failure")):
        if tag in tags:
            return status
    if testcase.find("outcome") is not None or testcase.get("outcome"):
        return "unexpected-success"
    return "ok"


def parse_junit(path, results, shim_lines):
    """Adds the test cases of regrtest's junit file to `results`; returns the counts."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
    tests = errors = failures = 0
    for suite in suites:
        tests += int(suite.get("tests", 0))
        errors += int(suite.get("errors", 0))
        failures += int(suite.get("failures", 0))
        for case in suite.iter("testcase"):
            for tag in ("system-out", "system-err"):
                for e in case.iter(tag):
                    shim_lines.extend(l for l in (e.text or "").splitlines() if SHIM_LINE.search(l))
            name = case.get("name")
            if name:     # a case without a name is a subtest failure: see the headers
                results[name] = status_of(case)
    return f"tests={tests} errors={errors} failures={failures}"


def parse_failure_headers(output, results):
    """Names the failures junit leaves unnamed (subtests, setUpClass...)."""
    lines = output.splitlines()
    for prev, line in zip(lines, lines[1:]):
        m = FAIL_HEADER.match(line)
        if not m or prev.strip() != SEPARATOR:
            continue
        kind, method, where, params = m.groups()
        test_id = where if where.endswith("." + method) else f"{where}.{method}"
        if params:
            test_id += f" ({params})"
        status = "error" if kind == "ERROR" else "failure"
        if results.get(test_id, "ok") == "ok":
            results[test_id] = status


def regrtest_verdict(output, returncode):
    found = re.findall(r"Tests result: ([A-Z][A-Z ,]*[A-Z])", output)
    verdict = found[-1] if found else "no verdict"
    return f"{verdict} (exit {returncode})"


def check_traces(giltrace, tracedir, run):
    """Runs `giltrace check --json` over the run's traces into `run`."""
    traces = glob.glob(os.path.join(tracedir, "**", "*.gtr"), recursive=True)
    run.traces = len(traces)
    if not traces:
        return
    proc = subprocess.run([giltrace, "check", "--json", tracedir], capture_output=True, text=True,
                          timeout=1800, env=clean_env())
    try:
        reports = json.loads(proc.stdout)
    except ValueError:
        run.unusable.append((tracedir, f"giltrace check exited {proc.returncode}: {proc.stderr.strip()[:500]}"))
        return
    for rep in reports:
        if not rep.get("usable", True):
            run.unusable.append((rep.get("trace"), rep.get("error") or rep.get("reason") or "unusable"))
        if rep.get("truncated"):
            run.truncated += 1
        crashed = any(f.get("id") in CRASH_FINDINGS for f in rep.get("findings", []))
        for f in rep.get("findings", []):
            if f.get("id") in CRASH_FINDINGS:
                run.crashes += 1
            elif crashed and f.get("id") in CRASH_EXPLAINED_BY_DESIGN:
                pass  # part of the crash counted above
            elif f.get("severity") == "error":
                run.findings.append((rep.get("trace"), f.get("id"), f.get("what")))


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_regrtest(python, module, traced, workdir, opts, matches=()):
    """Runs `python -m test -j1 -v --junit-xml` on one module; returns a Run."""
    run = Run(traced)
    os.makedirs(workdir, exist_ok=True)
    xml = os.path.join(workdir, "junit.xml")
    env = clean_env()
    tracedir = os.path.join(workdir, "traces")
    if traced:
        options = f"output={tracedir}/%p.gtr"
        if opts.extra_options:
            options += ":" + opts.extra_options
        env["LD_PRELOAD"] = opts.shim
        env["GILTRACE_OPTIONS"] = options
    # -j1: the module runs in a worker process (one at a time: 2 cores are
    # shared); --timeout: regrtest kills a hung worker and says so.
    cmd = [python, "-m", "test", "-j1", "-v", "--junit-xml", xml, "--timeout", str(opts.timeout)]
    for m in matches:
        cmd += ["-m", m]
    cmd.append(module)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=opts.timeout * 2 + 120)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, _ = proc.communicate()
        out += b"\n[compare.py: regrtest did not finish in time, killed]\n"
    run.wall = time.monotonic() - start
    run.returncode = proc.returncode
    run.output = out.decode("utf-8", "replace")
    run.shim_lines = [l for l in run.output.splitlines() if SHIM_LINE.search(l)]
    counts = parse_junit(xml, run.results, run.shim_lines)
    parse_failure_headers(run.output, run.results)
    if not matches:
        run.results[KEY_VERDICT] = regrtest_verdict(run.output, run.returncode)
        run.results[KEY_COUNTS] = counts or "no junit file"
    if traced:
        check_traces(opts.giltrace, tracedir, run)
        if not opts.keep:
            # A test module leaves hundreds of traces: keep only those worth
            # a look (error findings, unusable), in kept-traces/.
            kept = {}
            for trace in {t for t, _, _ in run.findings} | {t for t, _ in run.unusable}:
                if trace and os.path.isfile(trace):
                    kept[trace] = os.path.join(workdir, "kept-traces", os.path.basename(trace))
                    os.makedirs(os.path.dirname(kept[trace]), exist_ok=True)
                    shutil.move(trace, kept[trace])
            run.findings = [(kept.get(t, t), i, w) for t, i, w in run.findings]
            run.unusable = [(kept.get(t, t), w) for t, w in run.unusable]
            shutil.rmtree(tracedir, ignore_errors=True)
    with open(os.path.join(workdir, "output.txt"), "w") as f:
        f.write(run.output)
    return run


# --- comparing --------------------------------------------------------------

def differing_keys(untraced, traced):
    keys = set(untraced.results) | set(traced.results)
    return sorted(k for k in keys if untraced.results.get(k, "missing") != traced.results.get(k, "missing"))


def verdict(outcomes_untraced, outcomes_traced):
    """'identical', 'flaky' (untraced varies too, traced adds nothing new) or 'differs'.

    A difference stands when the traced side gave a result the untraced
    side never gave, over all runs."""
    if not set(outcomes_traced) <= set(outcomes_untraced):
        return "differs"
    if len(set(outcomes_untraced) | set(outcomes_traced)) > 1:
        return "flaky"
    return "identical"


def match_pattern(key):
    """The regrtest -m pattern that reruns test id `key` (a subtest: its test)."""
    return key.split(" ", 1)[0]


class ModuleResult:
    def __init__(self, label, python, module):
        self.label, self.python, self.module = label, python, module
        self.skipped = None      # why the module did not run
        self.runs = []           # every Run, first the two full ones
        self.cases = 0
        self.differences = {}    # key -> {"untraced": [...], "traced": [...]}
        self.flaky = {}          # key -> same
        self.rerun = []          # what was rerun: (keys, times)

    @property
    def untraced_wall(self):
        return self.runs[0].wall if self.runs else 0.0

    @property
    def traced_wall(self):
        return self.runs[1].wall if len(self.runs) > 1 else 0.0

    def shim_lines(self):
        return [l for r in self.runs if r.traced for l in r.shim_lines]

    def findings(self):
        return [f for r in self.runs if r.traced for f in r.findings]

    def ok(self):
        if self.skipped is not None:
            return True
        # No test case at all (a -m pattern that matches nothing, a module
        # that failed to import on both sides) proves nothing.
        return self.cases > 0 and not (self.differences or self.shim_lines() or self.findings())

    def to_json(self):
        traced = [r for r in self.runs if r.traced]
        return {
            "interpreter": self.label, "python": self.python, "module": self.module,
            "skipped": self.skipped, "ok": self.ok(), "cases": self.cases,
            "untraced_s": round(self.untraced_wall, 2), "traced_s": round(self.traced_wall, 2),
            "differences": self.differences, "flaky": self.flaky,
            "rerun": [{"keys": k, "times": n} for k, n in self.rerun],
            "shim_lines": self.shim_lines(),
            "error_findings": [{"trace": t, "id": i, "what": w} for t, i, w in self.findings()],
            "traces": sum(r.traces for r in traced),
            "truncated_traces": sum(r.truncated for r in traced),
            "crashes_recorded": sum(r.crashes for r in traced),
            "unusable_traces": [{"trace": t, "why": w} for r in traced for t, w in r.unusable],
        }


def compare_module(label, python, module, opts, workroot, matches=()):
    res = ModuleResult(label, python, module)
    base = os.path.join(workroot, label, module)
    log(f"{label} {module}: untraced ...")
    u = run_regrtest(python, module, False, os.path.join(base, "untraced"), opts, matches)
    log(f"{label} {module}: untraced {u.wall:.1f} s, traced ...")
    t = run_regrtest(python, module, True, os.path.join(base, "traced"), opts, matches)
    log(f"{label} {module}: traced {t.wall:.1f} s")
    res.runs += [u, t]
    res.cases = len([k for k in u.results if not k.startswith("<")])
    keys = differing_keys(u, t)
    outcomes = {k: {"untraced": [u.results.get(k, "missing")], "traced": [t.results.get(k, "missing")]}
                for k in keys}
    case_keys = [k for k in keys if not k.startswith("<")]
    module_keys = [k for k in keys if k.startswith("<")]

    def rerun(rerun_keys, patterns, name):
        if opts.reruns:
            res.rerun.append((rerun_keys, opts.reruns))
        for attempt in range(opts.reruns):
            for traced in (False, True):
                side = "traced" if traced else "untraced"
                log(f"{label} {module}: {name} {attempt + 1} {side}: {len(rerun_keys)} key(s)")
                r = run_regrtest(python, module, traced,
                                 os.path.join(base, f"{name}{attempt + 1}-{side}"), opts, patterns)
                res.runs.append(r)
                for k in rerun_keys:
                    outcomes[k][side].append(r.results.get(k, "missing"))

    # First only the cases that differed (regrtest -m): the module's verdict
    # and counts of such a run are not those of the whole module.
    if case_keys:
        rerun(case_keys, sorted({match_pattern(k) for k in case_keys}), "rerun")
    case_differs = any(verdict(outcomes[k]["untraced"], outcomes[k]["traced"]) == "differs"
                       for k in case_keys)
    # A module-level difference no differing case explains (ENV CHANGED, a
    # crashed worker, an error outside any test): the whole module again.
    if module_keys and not case_differs:
        rerun(module_keys, list(matches), "rerun-module")
    for k, o in outcomes.items():
        if k.startswith("<") and case_differs:
            v = "differs"    # follows from its cases
        else:
            v = verdict(o["untraced"], o["traced"])
        if v == "differs":
            res.differences[k] = o
        elif v == "flaky":
            res.flaky[k] = o
    return res


# --- the command ------------------------------------------------------------

VERBOSE = [True]


def log(msg):
    if VERBOSE[0]:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def shorten(text, width=200):
    return text if len(text) <= width else text[:width] + f"... ({len(text)} chars)"


def describe(res):
    if res.skipped:
        return f"{res.label:16} {res.module:24} skipped: {res.skipped}"
    traced = [r for r in res.runs if r.traced]
    line = (f"{res.label:16} {res.module:24} {'ok  ' if res.ok() else 'FAIL'} {res.cases:5} cases, "
            f"untraced {res.untraced_wall:6.1f} s, traced {res.traced_wall:6.1f} s, "
            f"{sum(r.traces for r in traced)} traces")
    out = [line]
    if not res.cases:
        out.append("    no test case ran (untraced): nothing was compared")
    for title, table in (("differs", res.differences), ("flaky untraced too (rerun)", res.flaky)):
        for i, (k, o) in enumerate(sorted(table.items())):
            if i == 30:
                out.append(f"    ... {len(table) - 30} more ({title})")
                break
            out.append(f"    {title}: {k}: untraced {o['untraced']}, traced {o['traced']}")
    for tr, fid, what in res.findings()[:20]:
        out.append(f"    error finding: {fid}: {what} ({tr})")
    for l in res.shim_lines()[:20]:
        out.append(f"    shim output: {shorten(l.strip())}")
    for r in traced:
        for tr, why in r.unusable[:5]:
            out.append(f"    note: unusable trace {tr}: {why}")
    return "\n".join(out)


def markdown_table(results):
    """The docs/cpython-tests.md tables, from the --json output: test cases
    per module and interpreter, totals per interpreter, then what failed."""
    labels = list(dict.fromkeys(r["interpreter"] for r in results))
    modules = list(dict.fromkeys(r["module"] for r in results))
    cell = {(r["interpreter"], r["module"]): r for r in results}
    out = ["| module | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for m in modules:
        row = []
        for label in labels:
            r = cell.get((label, m))
            if r is None:
                row.append("")
            elif r["skipped"]:
                row.append("n/i")
            else:
                row.append(f"{r['cases']}" if r["ok"] else f"**FAIL** ({r['cases']})")
        out.append(f"| {m} | " + " | ".join(row) + " |")
    out += ["", "| interpreter | modules run | test cases | traces (truncated, unusable) | untraced s | traced s "
            "| ratio | failing modules |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    totals = {}
    for r in results:
        if r["skipped"]:
            continue
        t = totals.setdefault(r["interpreter"], [0] * 8)
        for i, v in enumerate((1, r["cases"], r["untraced_s"], r["traced_s"], 0 if r["ok"] else 1, r["traces"],
                               r["truncated_traces"], len(r["unusable_traces"]))):
            t[i] += v
    rows = list(totals.items())
    if rows:
        rows.append(("all", [sum(v[i] for v in totals.values()) for i in range(8)]))
    for label, (n, cases, u, t, bad, traces, trunc, unusable) in rows:
        out.append(f"| {label} | {n} | {cases} | {traces} ({trunc}, {unusable}) | {u:.0f} | {t:.0f} | "
                   f"{t / u if u else 0:.2f} | {bad} |")
    notes = []
    for r in results:
        where = f"{r['interpreter']} {r['module']}"
        for k, o in sorted(r["differences"].items()):
            notes.append(f"- {where}: differs: `{k}`: untraced {o['untraced']}, traced {o['traced']}")
        for k, o in sorted(r["flaky"].items()):
            notes.append(f"- {where}: flaky untraced too, rerun: `{k}`: untraced {o['untraced']}, "
                         f"traced {o['traced']}")
        for f in r["error_findings"]:
            notes.append(f"- {where}: error finding `{f['id']}`: {f['what']}")
        if r["shim_lines"]:
            notes.append(f"- {where}: {len(r['shim_lines'])} lines of shim output, the first: "
                         f"`{shorten(r['shim_lines'][0].strip(), 160)}`")
        for u in r["unusable_traces"]:
            why = (u["why"] or "").replace(u["trace"] or "", os.path.basename(u["trace"] or ""))
            notes.append(f"- {where}: unusable trace (a note, not a failure): {why}")
    if notes:
        out += [""] + notes
    return "\n".join(out)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-p", "--python", action="append", default=[],
                   help="interpreter to test (repeatable; default: every one found)")
    p.add_argument("-t", "--test-module", action="append", default=[], dest="modules",
                   help=f"regrtest module (repeatable; default: {' '.join(DEFAULT_MODULES)})")
    p.add_argument("--match", action="append", default=[],
                   help="only the test cases regrtest's -m PATTERN selects (repeatable)")
    p.add_argument("--reruns", type=int, default=2, help="reruns of a differing test, per side (default 2)")
    p.add_argument("--timeout", type=int, default=1200, help="regrtest's per-module timeout, seconds")
    p.add_argument("--shim", default=DEFAULT_SHIM)
    p.add_argument("--giltrace", default=DEFAULT_GILTRACE)
    p.add_argument("--extra-options", default="",
                   help="appended to GILTRACE_OPTIONS on the traced side (default: none, defaults)")
    p.add_argument("--workdir", help="keep outputs and junit files here (default: a temporary folder, removed)")
    p.add_argument("--keep", action="store_true", help="keep every trace (default: only those with findings)")
    p.add_argument("--json", help="write the results as JSON to this file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--table", metavar="JSON", help="print the markdown tables of a --json result and exit")
    return p.parse_args(argv)


def main(argv=None):
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    VERBOSE[0] = not opts.quiet
    if opts.table:
        with open(opts.table) as f:
            print(markdown_table(json.load(f)))
        return 0
    for path in (opts.shim, opts.giltrace):
        if not os.path.exists(path):
            print(f"compare.py: {path} is missing (run make)", file=sys.stderr)
            return 2
    opts.shim = os.path.abspath(opts.shim)
    opts.giltrace = os.path.abspath(opts.giltrace)
    pythons = [(label_of(p), p) for p in opts.python] or discover_interpreters()
    modules = opts.modules or DEFAULT_MODULES
    workroot = opts.workdir or tempfile.mkdtemp(prefix="cpython-compare-")
    workroot = os.path.abspath(workroot)
    results = []
    try:
        for label, python in pythons:
            testdir = test_package_dir(python)
            for module in modules:
                if testdir is None:
                    res = ModuleResult(label, python, module)
                    res.skipped = "no `test` package (Debian: apt-get install libpython3.X-testsuite)"
                elif not module_installed(testdir, module):
                    res = ModuleResult(label, python, module)
                    res.skipped = f"not installed in {testdir}"
                else:
                    res = compare_module(label, python, module, opts, workroot, opts.match)
                results.append(res)
                print(describe(res), flush=True)
    finally:
        if not opts.workdir:
            shutil.rmtree(workroot, ignore_errors=True)
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump([r.to_json() for r in results], f, indent=1)
    ran = [r for r in results if not r.skipped]
    if not ran:
        print("compare.py: nothing ran", file=sys.stderr)
        return 2
    bad = [r for r in ran if not r.ok()]
    print(f"{len(ran)} module runs, {sum(r.cases for r in ran)} test cases: "
          + (f"{len(bad)} with differences, error findings or shim output" if bad else "identical traced and untraced"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
