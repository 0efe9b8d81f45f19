"""bpo-39877: daemon threads still sleeping in time.sleep() when the main
thread exits; each wake-up re-takes the GIL (PyEval_RestoreThread) and may
do so while, or after, Py_FinalizeEx() runs.  The reproducer of the bug
report: it crashed 3.8 now and then; 3.9+ end such threads in take_gil().

Expected: exit status 0, stdout "main exits".
"""
import random
import threading
import time


def sleeper():
    while True:
        time.sleep(random.random() / 100)


for _ in range(10):
    threading.Thread(target=sleeper, daemon=True).start()
time.sleep(0.2)
print("main exits")
