"""Clean baseline: asyncio.run() with blocking work sent to the default
executor (loop.run_in_executor) and, where it exists (3.9+), to
asyncio.to_thread.  Expected: exit status 0, stdout "clean_asyncio ok".
"""
import asyncio
import time


def blocking(n):
    time.sleep(0.01)
    return n * n


async def main():
    loop = asyncio.get_running_loop()
    jobs = [loop.run_in_executor(None, blocking, n) for n in range(8)]
    if hasattr(asyncio, "to_thread"):
        jobs += [asyncio.to_thread(blocking, n) for n in range(8)]
    results = await asyncio.gather(*jobs)
    assert results[:8] == [n * n for n in range(8)]
    assert results[8:] in ([], [n * n for n in range(8)])


asyncio.run(main())
print("clean_asyncio ok")
