"""Reading benchmarks: every command on storm traces of 10 M and 100 M events,
whole command, best of N, with its peak memory, against `cat FILE > /dev/null`
(the file's own read speed) in the same run.  Prints Markdown for
docs/performance.md.

Each trace is read from the page cache (warm: what repeated analysis sees)
and, for report and cat, also after dropping the page cache (cold: the
disk's speed), when this user may drop it (root).

usage: /usr/bin/python3 bench/read.py [--events N,N] [--reps N] [--python PATH] [--keep DIR]

--keep DIR keeps the traces there and reuses those already made (a 100 M
event trace takes about 15 minutes to record on 2 cores).
"""
import argparse
import os
import re
import subprocess
import tempfile
import time

from run import GILTRACE, SHIM, STORM  # the same storm as the tracing benchmark

DROP_CACHES = "/proc/sys/vm/drop_caches"


def event_count(trace):
    out = subprocess.run([GILTRACE, "report", trace], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"threads, (\d+) events", out).group(1))


def record(python, script, events, out):
    """A storm trace of about `events` events at out."""
    # about 12 events per iteration index (4 threads x 3 events)
    iterations = max(1, events // 12)
    for _ in range(2):
        env = dict(os.environ, LD_PRELOAD=SHIM, GILTRACE_OPTIONS=f"output={out}:check=0")
        subprocess.run([python, script, str(iterations)], env=env, check=True)
        got = event_count(out)
        if got >= events:
            return got
        iterations = int(iterations * events / got * 1.02)
        os.unlink(out)
    return got


def drop_cache(path):
    """Drop the page cache (of everything: the file's pages are what
    matters), or False if this user may not."""
    try:
        os.sync()
        with open(DROP_CACHES, "w") as f:
            f.write("1\n")
        return True
    except OSError:
        return False


def run_once(cmd, cold_path=None):
    """Wall seconds and peak RSS (KiB) of one run.  The peak comes from
    /usr/bin/time: a child's ru_maxrss seen from here starts at this
    Python's own size (fork copies it, exec keeps the maximum)."""
    if cold_path:
        drop_cache(cold_path)
    with tempfile.NamedTemporaryFile("r") as rss, open(os.devnull, "wb") as null:
        t0 = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd], stdout=null)
        seconds = time.perf_counter() - t0
        peak = int(rss.read().split()[-1])
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd} failed: {proc.returncode}")
    return seconds, peak


def best_of(reps, cmd, cold_path=None):
    runs = [run_once(cmd, cold_path) for _ in range(reps)]
    return min(r[0] for r in runs), max(r[1] for r in runs)


def bench_trace(trace, events, reps, tmp):
    size = os.path.getsize(trace)
    html = os.path.join(tmp, "out.html")
    chrome = os.path.join(tmp, "out.json")
    commands = [
        ("cat > /dev/null", ["cat", trace]),
        ("report", [GILTRACE, "report", trace]),
        ("report --json", [GILTRACE, "report", "--json", trace]),
        ("check", [GILTRACE, "check", trace]),
        ("timeline", [GILTRACE, "timeline", "--width", "160", trace]),
        ("report --html", [GILTRACE, "report", "--html", html, trace]),
        ("export --format chrome", [GILTRACE, "export", "--format", "chrome", "-o", chrome, trace]),
    ]
    print(f"### {events:,} events ({size / 2**20:,.0f} MiB, {size / events:.1f} bytes per event)\n")
    print("| command | time (warm) | events/s | peak memory | vs report | vs cat |")
    print("|---|---|---|---|---|---|")
    times = {}
    for name, cmd in commands:
        seconds, rss = best_of(reps, cmd)
        times[name] = seconds
        rel_report = f"{seconds / times['report']:.2f}x" if "report" in times else ""
        print(f"| `{name}` | {seconds:.3f} s | {events / seconds / 1e6:.1f} M | {rss / 1024:.1f} MiB "
              f"| {rel_report} | {seconds / times['cat > /dev/null']:.1f}x |", flush=True)
        for out in (html, chrome):
            if os.path.exists(out):
                os.unlink(out)
    if drop_cache(trace):
        cat, _ = best_of(reps, ["cat", trace], cold_path=trace)
        rep, rss = best_of(reps, [GILTRACE, "report", trace], cold_path=trace)
        print(f"\nFrom disk (page cache dropped before each run): `cat` {cat:.3f} s "
              f"({size / cat / 2**20:,.0f} MiB/s), `report` {rep:.3f} s ({events / rep / 1e6:.1f} M events/s, "
              f"{size / rep / 2**20:,.0f} MiB/s, {rep / cat:.2f}x cat), peak {rss / 1024:.1f} MiB.\n")
    else:
        print("\nFrom disk: not measured (this user may not drop the page cache).\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", default="10000000,100000000")
    ap.add_argument("--python", default="/usr/bin/python3.11")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--keep", help="keep the traces in this folder and reuse them")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or tmp
        os.makedirs(folder, exist_ok=True)
        script = os.path.join(tmp, "storm.py")
        with open(script, "w") as f:
            f.write(STORM)
        print(f"## Reading, {time.strftime('%Y-%m-%d')}: storm traces (4 threads x time.sleep(0) under "
              f"{args.python}), whole command, best of {args.reps}, `{os.cpu_count()}` CPUs\n")
        for events in (int(n) for n in args.events.split(",")):
            trace = os.path.join(folder, f"storm-{events}.gtr")
            if os.path.exists(trace):
                got = event_count(trace)
            else:
                got = record(args.python, script, events, trace)
            bench_trace(trace, got, args.reps, tmp)


if __name__ == "__main__":
    main()
