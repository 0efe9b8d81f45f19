"""Clean baseline: 4 threads do a little work and are joined; nothing runs
at shutdown.  Expected: exit status 0, stdout "clean_join ok".
"""
import threading

results = [0] * 4


def work(i):
    results[i] = sum(range(100000 * (i + 1)))


threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert results == [sum(range(100000 * (i + 1))) for i in range(4)]
print("clean_join ok")
