"""The cost of a native stack, and of the Python stack read with it, in the
shim (stacks=all on a shared build's storm).  Prints Markdown for docs/performance.md; the reading and rendering
of big traces is bench/read.py.

usage: /usr/bin/python3 bench/stacks.py [--reps N] [--shared-python PATH]
"""
import argparse
import os
import statistics
import subprocess
import tempfile
import time

from run import GILTRACE, SHIM, STORM  # the same storm as the tracing benchmark


def traced(python, script, arg, out, options=""):
    env = dict(os.environ, LD_PRELOAD=SHIM, GILTRACE_OPTIONS=f"output={out}:check=0{options}")
    t0 = time.perf_counter()
    subprocess.run([python, script, arg], env=env, check=True)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared-python", default=os.path.expanduser("~/.pyenv/versions/3.12.1/bin/python3.12"))
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "storm.py")
        with open(script, "w") as f:
            f.write(STORM)
        # every C-API call of a shared build gets one
        if not os.access(args.shared_python, os.X_OK):
            print(f"\n- the cost of a native stack: not measured ({args.shared_python} is not here)")
        else:
            n = "20000"
            base, native, python = [], [], []
            for i in range(args.reps + 2):
                base.append(traced(args.shared_python, script, n, os.path.join(tmp, f"b{i}.gtr")))
                native.append(traced(args.shared_python, script, n, os.path.join(tmp, f"n{i}.gtr"),
                                     ":stacks=all:py_stack_depth=0"))
                python.append(traced(args.shared_python, script, n, os.path.join(tmp, f"s{i}.gtr"),
                                     ":stacks=all"))
            out = subprocess.run([GILTRACE, "dump", os.path.join(tmp, "s0.gtr")], capture_output=True,
                                 text=True, check=True).stdout
            stacks = out.count(" stack=")
            py_stacks = [line.split(" py-stack=", 1)[1] for line in out.splitlines() if " py-stack=" in line]
            frames = sum(p.count("@") for p in py_stacks)
            per = (statistics.median(native) - statistics.median(base)) * 1e9 / stacks
            per_py = (statistics.median(python) - statistics.median(native)) * 1e9 / max(len(py_stacks), 1)
            print(f"\n- a native stack (backtrace(), depth up to 32) costs about {per / 1000:.1f} us: "
                  f"{args.shared_python} storm of 4 x {n} time.sleep(0) with `stacks=all:py_stack_depth=0` "
                  f"records {stacks} stacks (every PyEval_RestoreThread call; PyEval_SaveThread records only "
                  f"its return) and takes {statistics.median(native):.2f} s against "
                  f"{statistics.median(base):.2f} s with the default (median of {args.reps + 2}).")
            print(f"- its Python stack costs about {per_py / 1000:.1f} us more: with `stacks=all` (Python "
                  f"stacks on, 16 frames at most) the same storm records {len(py_stacks)} Python stacks of "
                  f"{frames / max(len(py_stacks), 1):.1f} frames on average and takes "
                  f"{statistics.median(python):.2f} s (median of {args.reps + 2}).")

if __name__ == "__main__":
    main()
