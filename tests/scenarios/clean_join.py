"""Clean baseline: 4 threads do a little work and are joined; nothing runs
at shutdown.  Expected: exit status 0, stdout "clean_join ok".
"""
import os
import threading
import time

results = [0] * 4


def work(i):
    results[i] = sum(range(100000 * (i + 1)))


threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert results == [sum(range(100000 * (i + 1))) for i in range(4)]
# join() returns before a worker frees its thread state and returns from
# its start routine: wait for the threads to be gone, so that a trace of a
# clean run always holds the 4 ends and frees (tests count them)
deadline = time.monotonic() + 30
while len(os.listdir("/proc/self/task")) > 1 and time.monotonic() < deadline:
    time.sleep(0.001)
print("clean_join ok")
