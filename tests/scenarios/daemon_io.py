"""Daemon threads doing file I/O while the interpreter shuts down, in the
shape of CPython's test_threading test_4_daemon_threads (bpo-1856: a daemon
thread must not crash the interpreter by touching structures that
finalization is disposing of).

40 daemon threads loop on a small temporary file (write, seek, read; the
file is anonymous and vanishes on close) and tiny random sleeps; main waits
until each has run once, then sys.exit(0).
Expected: exit status 0, stdout "main exits".
"""
import random
import sys
import tempfile
import threading
import time

THREADS = 40

lock = threading.Lock()
ran = set()
all_ran = threading.Event()


def random_io(n):
    payload = b"giltrace %d\n" % n * 16
    while True:
        with tempfile.TemporaryFile() as f:
            f.write(payload)
            f.seek(0)
            f.read()
        time.sleep(random.random() / 1995)
        if n not in ran:
            with lock:
                ran.add(n)
                if len(ran) == THREADS:
                    all_ran.set()


for n in range(THREADS):
    threading.Thread(target=random_io, args=(n,), daemon=True).start()
all_ran.wait()
print("main exits", flush=True)
sys.exit(0)
