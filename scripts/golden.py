#!/usr/bin/env python3
"""Golden outputs for a change of tools/: the same traces, two giltrace binaries.

    scripts/golden.py corpus DIR             trace every scenario of tests/scenarios on every
                                             interpreter found, plus a truncated, a cut-short
                                             and a ring trace, into DIR
    scripts/golden.py compare OLD NEW DIR    run report, report --json, check --json, timeline,
                                             dump and export with both binaries on every trace
                                             in DIR; print each difference, exit 1 if any

Traces differ from run to run, so the outputs are never stored: an old binary
(built from an earlier commit, e.g. `git worktree add /tmp/old REV && make -C
/tmp/old`) and the new one read the same files.  A difference that a change
means to make is listed in its commit; every other one is a regression.
"""
import difflib
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
import scenario_build  # noqa: E402  (tests/scenario_build.py, standard library only)

SCENARIOS = os.path.join(ROOT, "tests", "scenarios")
GILTRACE = os.path.join(ROOT, "build", "giltrace")
# Scripts and whether they need the gtscenario extension.
SCRIPTS = {
    "bpo39877.py": False, "clean_asyncio.py": False, "clean_join.py": False, "clean_pool.py": False,
    "daemon_io.py": False, "drop_request_hang.py": True, "exit_holding_gil.py": True,
    "gilstate_after_finalize.py": True, "restore_after_finalize.py": True, "use_after_delete.py": True,
}
STORM = """
import threading, time
def work(n):
    for _ in range(n):
        time.sleep(0)
ts = [threading.Thread(target=work, args=(20000,)) for _ in range(3)]
[t.start() for t in ts]
[t.join() for t in ts]
"""


def interpreters():
    found = [p for p in ("/usr/bin/python3.11", "/usr/bin/python3.11d") if os.access(p, os.X_OK)]
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    for minor in range(8, 14):
        versions = sorted(d for d in os.listdir(os.path.join(root, "versions"))
                          if d.startswith(f"3.{minor}.") and d.count(".") == 2) \
            if os.path.isdir(os.path.join(root, "versions")) else []
        if versions:
            found.append(os.path.join(root, "versions", versions[-1], "bin", f"python3.{minor}"))
    return found


def trace(out, python, argv, env=None, options="", timeout=120):
    run_env = dict(os.environ, **(env or {}))
    cmd = [GILTRACE, "run", "-o", out] + (options.split() if options else []) + ["--", python, *argv]
    try:
        subprocess.run(cmd, env=run_env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pass  # a hang scenario: the trace is what it is
    return out


def corpus(folder):
    os.makedirs(folder, exist_ok=True)
    builds = os.path.join(folder, ".builds")
    for python in interpreters():
        tag = os.path.basename(os.path.dirname(os.path.dirname(python))) if "pyenv" in python \
            else os.path.basename(python)
        ext = None
        try:
            ext = scenario_build.build_extension(python, builds)
        except RuntimeError as exc:
            print(f"{tag}: no gtscenario ({exc}); its scenarios skipped", file=sys.stderr)
        for script, needs_ext in SCRIPTS.items():
            if needs_ext and not ext:
                continue
            out = os.path.join(folder, f"{tag}-{script[:-3]}.gtr")
            trace(out, python, [os.path.join(SCENARIOS, script)], env={"PYTHONPATH": ext} if ext else None,
                  timeout=30)
        try:
            embed = scenario_build.build_embed(python, builds)
            for variant, args in (("clean", ["clean"]), ("stale", [])):
                trace(os.path.join(folder, f"{tag}-embed-{variant}.gtr"), embed, args, timeout=30)
        except RuntimeError:
            pass
    storm = os.path.join(folder, ".storm.py")
    with open(storm, "w") as f:
        f.write(STORM)
    python = "/usr/bin/python3.11"
    trace(os.path.join(folder, "ring.gtr"), python, [storm], options="--mode ring --ring-size 1")
    full = trace(os.path.join(folder, "storm.gtr"), python, [storm])
    with open(full, "rb") as f:
        data = f.read()
    with open(os.path.join(folder, "cut-short.gtr"), "wb") as f:
        f.write(data[: len(data) * 2 // 7])  # a partial copy
    killed = os.path.join(folder, "killed.gtr")
    proc = subprocess.Popen([GILTRACE, "run", "-o", killed, "--", python, "-c",
                             STORM + "\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"])
    proc.wait()
    shutil.rmtree(builds, ignore_errors=True)
    os.unlink(storm)
    print(f"{len([n for n in os.listdir(folder) if n.endswith('.gtr')])} traces in {folder}")


COMMANDS = [
    ("report", ["report"]),
    ("report-json", ["report", "--json"]),
    ("check-json", ["check", "--json"]),
    ("timeline", ["timeline", "--color", "never", "--width", "140"]),
    ("timeline-whole", ["timeline", "--color", "never", "--width", "140", "--around", "whole"]),
    ("dump", ["dump"]),
    ("export", ["export", "-o", "-"]),
]


def outputs(binary, path, name):
    proc = subprocess.run([binary, *name, path], capture_output=True, text=True, timeout=600)
    return f"status {proc.returncode}\n--- stdout\n{proc.stdout}--- stderr\n{proc.stderr}"


def compare(old, new, folder):
    differences = 0
    traces = sorted(n for n in os.listdir(folder) if n.endswith(".gtr"))
    for name in traces:
        path = os.path.join(folder, name)
        for label, args in COMMANDS:
            a, b = outputs(old, path, args), outputs(new, path, args)
            if a != b:
                differences += 1
                print(f"== {name}: {label} differs")
                diff = difflib.unified_diff(a.splitlines(), b.splitlines(), "old", "new", n=1, lineterm="")
                for i, line in enumerate(diff):
                    if i == 40:
                        print("   ... (more)")
                        break
                    print("   " + line)
    print(f"{len(traces)} traces x {len(COMMANDS)} outputs: {differences} differ")
    return 1 if differences else 0


def main(argv):
    if len(argv) == 2 and argv[0] == "corpus":
        corpus(argv[1])
        return 0
    if len(argv) == 4 and argv[0] == "compare":
        return compare(*argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
