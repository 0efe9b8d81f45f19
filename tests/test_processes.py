"""Many processes, one picture: check and report over a folder of traces
order them by when each process started and show the process tree (each
trace's header holds its parent's pid), one line per process, then the
total.
"""
import json
import os
import re
import subprocess

import pytest

from helpers import GILTRACE

PYTHON = "/usr/bin/python3.11"

# main starts a child with subprocess (a python of its own) after a fork
# child of its own (multiprocessing's fork start method) has run; the child
# starts a grandchild.
FAMILY = """\
import multiprocessing, subprocess, sys, time
def work():
    sum(range(1000))
if __name__ == "__main__":
    multiprocessing.set_start_method("fork")
    p = multiprocessing.Process(target=work)
    p.start(); p.join()
    time.sleep(0.05)
    code = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'pass'], check=True)"
    subprocess.run([sys.executable, "-c", code], check=True)
    print("family done")
"""


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    if not os.access(PYTHON, os.X_OK):
        pytest.skip("apt-get install python3.11")
    tmp = tmp_path_factory.mktemp("family")
    script = tmp / "family.py"
    script.write_text(FAMILY)
    proc = subprocess.run([GILTRACE, "run", "-o", str(tmp / "traces" / "%p.gtr"), "--", PYTHON, str(script)],
                          capture_output=True, text=True, timeout=120, cwd=tmp)
    assert proc.returncode == 0 and proc.stdout == "family done\n", proc.stderr
    return tmp / "traces"


def tree_of(output):
    lines = output.splitlines()
    start = [i for i, line in enumerate(lines) if "processes, in the order they started" in line]
    assert start, output
    rows = []
    for line in lines[start[0] + 1:]:
        m = re.match(r"^  ( *)pid (\d+) at \+(\S+ \S+): (.*) \((.*)\)$", line)
        if not m:
            break
        rows.append((len(m.group(1)) // 2, int(m.group(2)), m.group(4), m.group(5)))
    return rows


def test_check_shows_the_process_tree(family):
    proc = subprocess.run([GILTRACE, "check", str(family)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = tree_of(proc.stdout)
    assert len(rows) == 4 == len(list(family.glob("*.gtr")))
    (depth0, main_pid, _, _), *others = rows
    assert depth0 == 0
    by_pid = {pid: (depth, verdict) for depth, pid, verdict, _ in rows}
    fork_children = [pid for pid, (d, v) in by_pid.items() if "fork child" in v]
    assert len(fork_children) == 1 and by_pid[fork_children[0]][0] == 1
    assert sorted(d for d, _ in by_pid.values()) == [0, 1, 1, 2]   # main; fork child, child; grandchild
    # each line's trace is that process's, and they were listed in start order
    listed = [int(re.search(r"pid (\d+)", line).group(1)) for line in proc.stdout.splitlines()
              if line.startswith("giltrace: ") and ".gtr: pid" in line]
    assert listed[0] == main_pid and sorted(listed) == sorted(by_pid)
    assert proc.stdout.rstrip().endswith("checked 4 traces: 0 with errors, 0 unusable, 0 incomplete")


def test_report_over_a_folder(family):
    proc = subprocess.run([GILTRACE, "report", str(family)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\ntrace ") + proc.stdout.startswith("trace ") == 4
    rows = tree_of(proc.stdout)
    assert [d for d, *_ in rows][0] == 0 and len(rows) == 4
    assert all(re.search(r"python 3\.11\.\d+, \d+ threads?, 0 errors, 0 notes", v) for _, _, v, _ in rows)
    listed = subprocess.run([GILTRACE, "report", "--json", str(family)], capture_output=True, text=True)
    reports = json.loads(listed.stdout)
    starts = [r["process"]["start_realtime_ns"] for r in reports]
    assert len(reports) == 4 and starts == sorted(starts)


def test_html_of_a_run_of_processes(family, tmp_path):
    """report --html OUT.html FOLDER: a page per process beside OUT
    (OUT-PID.html), and OUT lists them as the tree, each linking to its
    page; all self-contained."""
    out = tmp_path / "run.html"
    proc = subprocess.run([GILTRACE, "report", "--html", str(out), str(family)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    index = out.read_text()
    assert "Content-Security-Policy" in index and "http://" not in index and "https://" not in index
    links = re.findall(r'<li data-depth="(\d+)"><a href="([^"]+)">pid (\d+)</a>', index)
    check = subprocess.run([GILTRACE, "check", str(family)], capture_output=True, text=True, timeout=120).stdout
    tree = [(depth, pid) for depth, pid, _, _ in tree_of(check)]
    assert [(int(d), int(pid)) for d, _, pid in links] == tree   # the same tree, in the same order
    for _, href, pid in links:
        page = (tmp_path / href).read_text()
        assert href == f"run-{pid}.html"
        assert f"pid {pid}" in page and "<svg" in page   # that process's own page, with its timeline
