"""Rendering benchmarks: timeline, HTML report and Chrome export of a trace
of 10 million events or more, and the cost of a native stack in the shim.
Prints Markdown for docs/performance.md.

usage: /usr/bin/python3 bench/render.py [--events N] [--python PATH] [--shared-python PATH]
"""
import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time

from run import GILTRACE, SHIM, STORM  # the same storm as the tracing benchmark


def event_count(trace):
    out = subprocess.run([GILTRACE, "dump", trace], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"# \d+ threads, (\d+) events", out).group(1))


def best_of(reps, cmd):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return min(times)


def traced(python, script, arg, out, options=""):
    env = dict(os.environ, LD_PRELOAD=SHIM, GILTRACE_OPTIONS=f"output={out}:check=0{options}")
    t0 = time.perf_counter()
    subprocess.run([python, script, arg], env=env, check=True)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--python", default="/usr/bin/python3.11")
    ap.add_argument("--shared-python", default=os.path.expanduser("~/.pyenv/versions/3.12.1/bin/python3.12"))
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "storm.py")
        with open(script, "w") as f:
            f.write(STORM)
        # about 12 events per iteration (all threads): size the storm, then
        # grow it once if it fell short
        iterations = args.events // 12
        big = os.path.join(tmp, "big.gtr")
        traced(args.python, script, str(iterations), big)
        events = event_count(big)
        if events < args.events:
            iterations = int(iterations * args.events / events * 1.05)
            os.unlink(big)
            traced(args.python, script, str(iterations), big)
            events = event_count(big)
        size = os.path.getsize(big)
        print(f"## Rendering, {time.strftime('%Y-%m-%d')}: a trace of {events:,} events ({size / 2**20:.0f} MiB), "
              f"4 threads x {iterations} time.sleep(0) under {args.python}; best of {args.reps}, whole command\n")
        print("| command | time | output |")
        print("|---|---|---|")
        runs = [
            ("giltrace report (text, with findings)", [GILTRACE, "report", big], None),
            ("giltrace timeline --around whole --width 160", [GILTRACE, "timeline", "--around", "whole",
                                                             "--width", "160", big], None),
            ("giltrace report --html", [GILTRACE, "report", "--around", "whole", "--html",
                                        os.path.join(tmp, "big.html"), big], os.path.join(tmp, "big.html")),
            ("giltrace export --format chrome", [GILTRACE, "export", "--format", "chrome", "-o",
                                                 os.path.join(tmp, "big.json"), big], os.path.join(tmp, "big.json")),
        ]
        for name, cmd, output in runs:
            seconds = best_of(args.reps, cmd)
            out = f"{os.path.getsize(output) / 1024:,.0f} KiB" if output else "terminal"
            print(f"| `{name}` | {seconds:.2f} s ({events / seconds / 1e6:.1f} M events/s) | {out} |")

        # the cost of a stack: every C-API call of a shared build gets one
        if os.access(args.shared_python, os.X_OK):
            n = "20000"
            base, stacked = [], []
            for i in range(args.reps + 2):
                base.append(traced(args.shared_python, script, n, os.path.join(tmp, f"b{i}.gtr")))
                stacked.append(traced(args.shared_python, script, n, os.path.join(tmp, f"s{i}.gtr"),
                                      ":stacks=all"))
            out = subprocess.run([GILTRACE, "dump", os.path.join(tmp, "s0.gtr")], capture_output=True,
                                 text=True, check=True).stdout
            stacks = out.count(" stack=")
            per = (statistics.median(stacked) - statistics.median(base)) * 1e9 / stacks
            print(f"\n- a native stack (backtrace(), depth up to 32) costs about {per / 1000:.1f} us: "
                  f"{args.shared_python} storm of 4 x {n} time.sleep(0) with `stacks=all` records {stacks} "
                  f"stacks (every PyEval_RestoreThread call; PyEval_SaveThread records only its return) and takes "
                  f"{statistics.median(stacked):.2f} s against {statistics.median(base):.2f} s with the "
                  f"default (median of {args.reps + 2}).")


if __name__ == "__main__":
    main()
