"""giltrace's demo: threads compete for the GIL, and daemon threads are still
running when the main thread exits and the interpreter finalizes."""
import sys
import threading
import time

sys.setswitchinterval(0.001)  # 1 ms: many handoffs in a short run


def crunch(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def worker():
    crunch(400_000)


def daemon_loop():
    while True:
        crunch(20_000)
        time.sleep(0.001)


workers = [threading.Thread(target=worker, name=f"worker-{i}") for i in range(3)]
daemons = [threading.Thread(target=daemon_loop, name=f"daemon-{i}", daemon=True) for i in range(2)]
for t in workers + daemons:
    t.start()
for t in workers:
    t.join()
print(f"workers done; exiting with {len(daemons)} daemon threads still running")
