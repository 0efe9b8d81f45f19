"""giltrace's benchmarks: untraced vs traced (full mode), side by side in one
run, median of several repetitions, interleaved so that machine noise hits
both alike.  Prints a Markdown report (docs/performance.md keeps one).

usage: /usr/bin/python3 bench/run.py [--reps N] [--python PATH]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIM = os.path.join(ROOT, "build", "libgiltrace.so")
GILTRACE = os.path.join(ROOT, "build", "giltrace")
MUTEX = os.path.join(ROOT, "build", "bench-mutex")

STORM = """
import sys, threading, time
N = int(sys.argv[1])
def loop():
    for _ in range(N):
        time.sleep(0)
ts = [threading.Thread(target=loop) for _ in range(4)]
for t in ts: t.start()
for t in ts: t.join()
"""

CPU = """
import sys, threading
N = int(sys.argv[1])
def work():
    n = 0
    for i in range(N):
        n += i
ts = [threading.Thread(target=work) for _ in range(4)]
for t in ts: t.start()
for t in ts: t.join()
"""


def timed(cmd, env):
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def compare(python, script, arg, reps, tmp):
    plain_env = dict(os.environ)
    plain_env.pop("LD_PRELOAD", None)
    plain, traced, last_trace = [], [], None
    for i in range(reps):
        plain.append(timed([python, script, arg], plain_env))
        out = os.path.join(tmp, f"bench-{os.path.basename(script)}-{i}.gtr")
        env = dict(plain_env, LD_PRELOAD=SHIM, GILTRACE_OPTIONS=f"output={out}")
        traced.append(timed([python, script, arg], env))
        if last_trace:
            os.unlink(last_trace)
        last_trace = out
    rep = json.loads(subprocess.run([GILTRACE, "report", "--json", last_trace], check=True,
                                    capture_output=True, text=True).stdout)
    return statistics.median(plain), statistics.median(traced), rep, last_trace


def reader_speed(trace, reps):
    best = min(timed([GILTRACE, "report", "--json", trace], os.environ) for _ in range(reps))
    return best


def microbench(reps, *args):
    """bench/mutex-pair.c untraced and traced: median ns per iteration."""
    plain, traced = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(reps):
            out = subprocess.run([MUTEX, *args], capture_output=True, text=True, check=True).stdout
            plain.append(float(out.split()[1]))
            env = dict(os.environ, LD_PRELOAD=SHIM, GILTRACE_OPTIONS=f"output={tmp}/m{i}.gtr")
            out = subprocess.run([MUTEX, *args], capture_output=True, text=True, check=True, env=env).stdout
            traced.append(float(out.split()[1]))
            os.unlink(f"{tmp}/m{i}.gtr")
    return statistics.median(plain), statistics.median(traced)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--python", default="/usr/bin/python3.11")
    args = ap.parse_args()
    version = subprocess.run([args.python, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"## Run of {time.strftime('%Y-%m-%d')}: {args.python} ({version}), {os.cpu_count()} CPUs ({cpu}), "
          f"{platform.system()} {platform.release()}, median of {args.reps}\n")
    print("| workload | untraced | traced | overhead | events | ns added per event | bytes per event |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for name, text, arg in (("handoff storm: 4 threads, time.sleep(0) x 50000", STORM, "50000"),
                                ("CPU-bound: 4 threads x 3M additions", CPU, "3000000")):
            script = os.path.join(tmp, name.split(":")[0].replace(" ", "_") + ".py")
            with open(script, "w") as f:
                f.write(text)
            plain, traced, rep, trace = compare(args.python, script, arg, args.reps, tmp)
            events = rep["events"]
            size = os.path.getsize(trace)
            per_event = (traced - plain) * 1e9 / events if events else float("nan")
            print(f"| {name} | {plain * 1e3:.1f} ms | {traced * 1e3:.1f} ms | {100 * (traced / plain - 1):+.1f}% "
                  f"| {events} | {per_event:.1f} | {size / events:.1f} |")
            results[name] = (trace, events)
        storm_trace, storm_events = results["handoff storm: 4 threads, time.sleep(0) x 50000"]
        # a bigger trace for the reader
        big = os.path.join(tmp, "big.gtr")
        script = os.path.join(tmp, "storm_big.py")
        with open(script, "w") as f:
            f.write(STORM)
        env = dict(os.environ, LD_PRELOAD=SHIM, GILTRACE_OPTIONS=f"output={big}")
        subprocess.run([args.python, script, "400000"], env=env, check=True)
        big_events = json.loads(subprocess.run([GILTRACE, "report", "--json", big], check=True,
                                               capture_output=True, text=True).stdout)["events"]
        seconds = reader_speed(big, 3)
        plain_pair, traced_pair = microbench(args.reps, "20000000")
        plain_cycle, traced_cycle = microbench(args.reps, "gil", "3000000")
        plain_free, traced_free = microbench(args.reps, "free", "20000000")
    print()
    print(f"- non-GIL pthread_mutex_lock/unlock pair (bench/mutex-pair.c, shim active): "
          f"{plain_pair:.2f} ns untraced, {traced_pair:.2f} ns traced, {traced_pair - plain_pair:+.2f} ns per pair")
    print(f"- one uncontended take_gil/drop_gil cycle on a GIL-shaped object (bench/mutex-pair.c gil, "
          f"3 events recorded per cycle): {plain_cycle:.1f} ns untraced, {traced_cycle:.1f} ns traced, "
          f"{(traced_cycle - plain_cycle) / 3:.1f} ns added per recorded event")
    print(f"- malloc(64)/free pair, the block not a thread state (bench/mutex-pair.c free, shim active): "
          f"{plain_free:.2f} ns untraced, {traced_free:.2f} ns traced, {traced_free - plain_free:+.2f} ns per free()")
    print(f"- `giltrace report --json` on {big_events} events: {seconds:.2f} s, "
          f"{big_events / seconds / 1e6:.1f} million events per second (best of 3, whole command)")


if __name__ == "__main__":
    main()
