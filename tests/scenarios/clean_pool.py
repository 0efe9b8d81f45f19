"""Clean baseline: a ThreadPoolExecutor maps work over its threads and is
shut down by its with-block.  Expected: exit status 0, stdout "clean_pool ok".
"""
from concurrent.futures import ThreadPoolExecutor


def work(n):
    return sum(range(n))


with ThreadPoolExecutor(max_workers=4) as pool:
    results = list(pool.map(work, range(1000, 1100)))
assert results == [sum(range(n)) for n in range(1000, 1100)]
print("clean_pool ok")
