"""What giltrace's integration tests share: paths, the interpreters found,
running giltrace and reading its JSON, the model's invariants, and the
events a trace must hold for a verdict on it to mean something.

One module for every test file (the fixtures are in conftest.py, which
imports this): no test file imports another.  Interpreters are discovered at
test time: Debian's python3.11 and its debug build, the pyenv builds
3.8-3.13, and 3.13.15 built by `make pythons`; each one absent is a visible
skip with the reason (pytest -rs).  The free-threaded 3.13.15t that `make
pythons` also builds is apart, in FREE_THREADED: every test of INTERPRETERS
traces a GIL, which that build does not have.
"""
import glob
import json
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
GILTRACE = os.path.join(BUILD, "giltrace")
GILTRACE_SAN = os.path.join(BUILD, "san", "giltrace")
SHIM = os.path.join(BUILD, "libgiltrace.so")

SCENARIOS = os.path.join(ROOT, "tests", "scenarios")


def pyenv_root():
    root = os.environ.get("PYENV_ROOT")
    if not root and shutil.which("pyenv"):
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
    return root or os.path.expanduser("~/.pyenv")


def _version_key(path):
    m = re.search(r"/versions/(\d+)\.(\d+)\.(\d+)/", path)
    return tuple(int(x) for x in m.groups()) if m else (0, 0, 0)


def pythons_cache():
    """Where scripts/build-python.sh (make pythons) installs its builds."""
    return os.environ.get("GILTRACE_PYTHONS") or os.path.expanduser("~/.cache/giltrace/pythons")


def _built_by_make_pythons(label, build, interpreter):
    """pytest.param of one build of `make pythons`, a skip if it is not built.
    Built means what scripts/build-python.sh writes last: its stamp file."""
    prefix = os.path.join(pythons_cache(), build)
    path = os.path.join(prefix, "bin", interpreter)
    if os.path.isfile(os.path.join(prefix, ".giltrace-built")) and os.access(path, os.X_OK):
        return pytest.param(path, id=label)
    return pytest.param(path, id=label, marks=pytest.mark.skip(
        reason=f"{label}: not built: run make pythons (no complete build in {prefix})"))


def discover_interpreters():
    found = []
    debian = [
        ("debian-3.11", "/usr/bin/python3.11", "apt-get install python3.11"),
        ("debian-3.11-dbg", "/usr/bin/python3.11d", "apt-get install python3.11-dbg"),
    ]
    for label, path, fix in debian:
        if os.access(path, os.X_OK):
            found.append(pytest.param(path, id=label))
        else:
            found.append(pytest.param(path, id=label, marks=pytest.mark.skip(
                reason=f"{label}: {path} not installed ({fix})")))
    root = pyenv_root()
    for minor in range(8, 14):
        paths = [p for p in glob.glob(f"{root}/versions/3.{minor}.*/bin/python3.{minor}")
                 if re.search(rf"/versions/3\.{minor}\.\d+/", p)]
        label = f"pyenv-3.{minor}"
        if paths:
            found.append(pytest.param(max(paths, key=_version_key), id=label))
        else:
            found.append(pytest.param(None, id=label, marks=pytest.mark.skip(
                reason=f"{label}: no pyenv 3.{minor}.x build under {root}/versions")))
    # upstream 3.13.15 (shared), from Debian's source package: a 3.13 whose
    # daemon threads park in pause() at exit (3.13.8+), where pyenv's 3.13.0
    # ends them
    found.append(_built_by_make_pythons("deb-3.13.15", "3.13.15-shared", "python3.13"))
    return found


def discover_free_threaded():
    """The free-threaded (--disable-gil) builds: no GIL unless PYTHON_GIL=1,
    so not in INTERPRETERS, whose tests all expect GIL events."""
    return [_built_by_make_pythons("deb-3.13.15t", "3.13.15t", "python3.13t")]


INTERPRETERS = discover_interpreters()
FREE_THREADED = discover_free_threaded()


def discover_parking():
    """The interpreters of INTERPRETERS whose must-exit check parks a daemon
    thread in PyThread_hang_thread() (pause() in a loop) instead of ending
    it: 3.13.8 and later (gh-87135).  One skip with the reason if none."""
    found = []
    for param in INTERPRETERS:
        (path,) = param.values
        if param.marks or not path:
            continue
        out = subprocess.run([path, "-c", "import sys; print(*sys.version_info[:3])"], capture_output=True,
                             text=True, timeout=60).stdout.split()
        if len(out) == 3 and tuple(map(int, out)) >= (3, 13, 8):
            found.append(param)
    return found or [pytest.param(None, id="parking", marks=pytest.mark.skip(
        reason="no interpreter here parks daemon threads at exit (3.13.8+): run make pythons"))]


PARKING = discover_parking()


def alive(pid):
    """Whether pid runs: a zombie (ended, not reaped yet) does not."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


def write_script(tmp_path, text, name="script.py"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# A script's last lines when the test counts what its threads' ends record:
# join() returns when a thread's state lock is released (3.11's
# tstate_delete_common runs on_delete first), before the thread frees its
# thread state and its start routine returns, which the shim records; wait
# for the kernel threads to be gone, or the process exit can come first.
WAIT_THREADS_GONE = """
import os as _os, time as _time
_deadline = _time.monotonic() + 30
while len(_os.listdir("/proc/self/task")) > 1 and _time.monotonic() < _deadline:
    _time.sleep(0.001)
"""


def giltrace_run(python, script, tmp_path, *args, extra=(), timeout=120):
    """giltrace run -o tmp/trace.gtr [args] -- python script extra..."""
    out = str(tmp_path / "trace.gtr")
    proc = subprocess.run([GILTRACE, "run", "-o", out, *args, "--", python, script, *extra],
                          capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    return proc, out


def report(trace, binary=GILTRACE):
    proc = subprocess.run([binary, "report", "--json", trace], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def dump(trace):
    proc = subprocess.run([GILTRACE, "dump", trace], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    events = []
    for line in proc.stdout.splitlines():
        if line.startswith("#"):
            continue
        parts = line.split()
        events.append((float(parts[0]), int(parts[1]), parts[2], parts[3:]))
    return events


def assert_model_sound(rep):
    """The model's own invariants, and an independent check of them."""
    assert rep["model_errors"] == []
    for g in rep["gils"]:
        # lost_ns: time across events the trace lost (ring mode, a cut copy)
        assert g["held_ns"] + g["idle_ns"] + g["lost_ns"] == rep["wall_ns"]
    for t in rep["threads"]:
        assert t["gil_hold_ns"] <= rep["wall_ns"]
    assert sum(t["gil_hold_ns"] for t in rep["threads"]) == sum(g["held_ns"] for g in rep["gils"])


def assert_recorded(rep, workers=0, finalization=True, ended=True):
    """The trace (its report, `rep`) holds the events a verdict on it rests
    on, so that "no findings" or "clean" says something: the main thread's
    GIL acquisitions and, when `ended`, its end; at least `workers` other
    threads that took the GIL; when `finalization`, the interpreter's
    finalization.  A trace of a shim that wrote its header and no event fails
    here.  Workers' ends are for the caller to ask for where the program
    guarantees them: join() returns before a worker's end is recorded (see
    WAIT_THREADS_GONE), so a clean program may exit first.
    Returns rep."""
    where = f"{rep['trace']} ({rep['events']} events)"
    main = [t for t in rep["threads"] if t["main"]]
    assert len(main) == 1 and main[0]["acquisitions"] > 0, f"{where}: no GIL acquisition of the main thread"
    if ended:
        assert main[0]["exit"], f"{where}: the main thread's end is not recorded"
    took_gil = [t for t in rep["threads"] if not t["main"] and t["acquisitions"] > 0]
    assert len(took_gil) >= workers, f"{where}: {len(took_gil)} other threads took the GIL, expected {workers}"
    if finalization:
        assert rep["finalization"]["start_ns"] is not None, f"{where}: the finalization is not recorded"
    return rep


def assert_holds_never_overlap(events):
    """Replays `giltrace dump`: an acquisition only when nobody holds the GIL."""
    holder = {}
    for ts, tid, name, details in events:
        gil = next((d for d in details if d.startswith("gil=")), None)
        if name in ("gil-acquire", "gil-held-at-fork"):
            assert holder.get(gil) is None, f"{tid} acquired {gil} at {ts} while {holder[gil]} held it"
            holder[gil] = tid
        elif name == "gil-release":
            assert holder.get(gil) == tid, f"{tid} released {gil} at {ts}, holder {holder.get(gil)}"
            holder[gil] = None
        elif name == "gil-reinit":
            holder[gil] = None


def version_of(python):
    out = subprocess.run([python, "-c", "import sys; print(sys.version_info[:3])"],
                         capture_output=True, text=True, check=True).stdout
    return tuple(int(x) for x in re.findall(r"\d+", out))


def run_scenario(python, script, tmp_path, ext_dir=None, args=(), check=True, timeout=60):
    """giltrace run [--check] -- python tests/scenarios/script; (proc, trace)."""
    env = dict(os.environ)
    if ext_dir:
        env["PYTHONPATH"] = ext_dir
    trace = str(tmp_path / (script.replace(".py", "") + ".gtr"))
    cmd = [GILTRACE, "run", "-o", trace] + (["--check"] if check else []) + \
          ["--", python, os.path.join(SCENARIOS, script), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=env)
    return proc, trace


def check_json(trace, binary=GILTRACE):
    proc = subprocess.run([binary, "check", "--json", trace], capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    assert "runtime error" not in proc.stderr
    result = json.loads(proc.stdout)
    assert len(result) == 1 and result[0]["usable"]
    return result[0], proc.returncode


def of(result, finding_id):
    return [f for f in result["findings"] if f["id"] == finding_id]


def errors(result):
    return [f for f in result["findings"] if f["severity"] == "error"]


def main_tid(result):
    return result["pid"]


# ---- hostile input: the sanitized CLI -----------------------------------------------

def run_tool(*args):
    """The ASan+UBSan giltrace on args."""
    return subprocess.run([GILTRACE_SAN, *args], capture_output=True, text=True, timeout=60)


def assert_every_reader_survives(tmp_path, data, damaged_may_exit_2=True, check_statuses=(0, 1)):
    """Each command that reads a whole trace, on `data`: no sanitizer report
    and its usual exit status (check: 1 when the damage reads as a
    finding, 2 when it sees the trace is incomplete), or 2 where the damage
    may make the trace unusable."""
    trace = tmp_path / "x.gtr"
    trace.write_bytes(bytes(data))
    page = str(tmp_path / "page.html")
    for cmd, statuses in [(["report", "--json"], (0,)), (["dump"], (0,)), (["check"], check_statuses),
                          (["check", "--json"], check_statuses), (["check", "--format", "junit"], check_statuses),
                          (["check", "--format", "sarif"], check_statuses), (["timeline", "--around", "whole"], (0,)),
                          (["report", "--html", page, "--around", "whole"], (0,)),
                          (["export", "-o", str(tmp_path / "x.json")], (0,))]:
        proc = run_tool(*cmd, str(trace))
        assert proc.returncode in statuses + ((2,) if damaged_may_exit_2 else ()), (cmd, proc.stderr)
        assert "AddressSanitizer" not in proc.stderr and "runtime error" not in proc.stderr, (cmd, proc.stderr)
