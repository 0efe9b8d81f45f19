"""What `giltrace stress` adds to the wall time of many short runs, against
the cheapest way to do the same: a shell loop running the script with the
shim preloaded in ring mode (at-exit check off; the traces removed once,
after the loop, in the timed part).  Both run one at a time (stress -j 1),
interleaved (the order swapped at each repetition), several repetitions;
prints the medians of the wall time, of the CPU time (user + system, of
every process), which a busy machine disturbs less, and of the CPU time of
the giltrace process alone (what stress itself adds).

usage: /usr/bin/python3 bench/stress.py [--runs 200] [--reps 5] [--python /usr/bin/python3.11]
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIM = os.path.join(ROOT, "build", "libgiltrace.so")
GILTRACE = os.path.join(ROOT, "build", "giltrace")

# short: a thread started and joined, so the trace has GIL handoffs
SCRIPT = """\
import threading
t = threading.Thread(target=sum, args=(range(10000),))
t.start()
t.join()
print("done")
"""

LOOP = """\
i=0
while [ $i -lt "$RUNS" ]; do
    i=$((i+1))
    LD_PRELOAD="$SHIM" GILTRACE_OPTIONS="output=$DIR/run-$i.%p.gtr:mode=ring:check=0" \\
        "$PYTHON" "$SCRIPT" >/dev/null 2>&1
done
rm -f "$DIR"/run-*.gtr
"""


def timed(cmd, env=None):
    """(wall, cpu, own cpu) seconds: of cmd and everything it started, and
    of cmd's own process alone (read from /proc while it is a zombie)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    with open(f"/proc/{proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    assert proc.wait() == 0
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), own


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--python", default="/usr/bin/python3.11")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="giltrace-bench-stress-")
    script = os.path.join(tmp, "short.py")
    with open(script, "w") as f:
        f.write(SCRIPT)
    loop, stress = [], []
    try:
        for rep in range(args.reps):
            d = os.path.join(tmp, f"loop-{rep}")
            os.mkdir(d)
            env = dict(os.environ, RUNS=str(args.runs), SHIM=SHIM, DIR=d, PYTHON=args.python, SCRIPT=script)
            env.pop("GILTRACE_OPTIONS", None)
            jobs = [(loop, ["/bin/sh", "-c", LOOP], env),
                    (stress, [GILTRACE, "stress", "-n", str(args.runs), "-j", "1",
                              "-o", os.path.join(tmp, f"stress-{rep}"), "--", args.python, script], None)]
            for results, cmd, e in (jobs if rep % 2 == 0 else jobs[::-1]):
                results.append(timed(cmd, e))
            print(f"rep {rep + 1}: shell loop {loop[-1][0]:.2f} s (cpu {loop[-1][1]:.2f} s), "
                  f"stress -j 1 {stress[-1][0]:.2f} s (cpu {stress[-1][1]:.2f} s, "
                  f"of which giltrace itself {stress[-1][2]:.2f} s)", flush=True)
    finally:
        shutil.rmtree(tmp)
    print(f"{args.runs} runs of a short script, median of {args.reps}:")
    for i, what in ((0, "wall"), (1, "cpu")):
        a = statistics.median(r[i] for r in loop)
        b = statistics.median(r[i] for r in stress)
        print(f"  {what}: shell loop with the shim (ring) {a:.2f} s ({1000 * a / args.runs:.1f} ms/run), "
              f"giltrace stress -j 1 {b:.2f} s ({1000 * b / args.runs:.1f} ms/run): stress {100 * (b - a) / a:+.1f}%")
    own = statistics.median(r[2] for r in stress)
    print(f"  cpu of the giltrace process itself (forks, waits, analysing and removing the traces): "
          f"{own:.2f} s ({1000 * own / args.runs:.2f} ms/run)")


if __name__ == "__main__":
    main()
