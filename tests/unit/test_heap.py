"""intercloud.heap: with the agent's thresholds, big buffers a thread frees go back to the
system; with glibc's adaptive defaults the same work leaves them resident. The collector walks
the young objects less often, and its time is counted by generation. Threshold cases run in a
fresh interpreter (the thresholds are process-wide), on this machine's real glibc and CPython."""

from __future__ import annotations

import gc
import subprocess
import sys

from intercloud import heap

# A thread frees one 30 MB buffer (glibc then serves buffers below 30 MB from its heaps), then
# makes and frees 20 MB of 2 MB buffers three times, each time keeping a small object made
# after them: what the agent's API workers do with big answers and dumps.
WORK = """
import sys, threading
if sys.argv[1] == "tuned":
    from intercloud import heap
    assert heap.tune()
def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS")) // 1024
def work():
    big = bytearray(30 << 20)
    del big
    kept = []
    for _ in range(3):
        buffers = [bytes(2 << 20) for _ in range(10)]
        kept.append(bytes(100))
        del buffers
before = rss_mb()
worker = threading.Thread(target=work)
worker.start()
worker.join()
print(rss_mb() - before)
"""


def grown_mb(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", WORK, mode], capture_output=True, text=True, timeout=60, check=True
    )
    return int(done.stdout.split()[-1])


def test_big_buffers_freed_by_a_thread_leave_the_process():
    assert grown_mb("default") >= 15  # the case is one that keeps memory without tuning
    assert grown_mb("tuned") <= 3


def test_tune_reports_whether_glibc_took_the_thresholds():
    assert heap.tune() is True


# 100,000 lists kept (a pass's rows live until it ends): how many young walks they cost
YOUNG = """
import gc, sys
if sys.argv[1] == "tuned":
    from intercloud import heap
    heap.collect_less()
before = gc.get_stats()[0]["collections"]
kept = [[i] for i in range(100_000)]
print(gc.get_stats()[0]["collections"] - before)
"""


def young_walks(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", YOUNG, mode], capture_output=True, text=True, timeout=60, check=True
    )
    return int(done.stdout.split()[-1])


def test_collect_less_walks_the_young_objects_a_tenth_as_often():
    assert young_walks("default") >= 100  # CPython's 700: one walk per 700 lists
    assert young_walks("tuned") <= 12


class Ring:
    """An object in a cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_collector_time_counts_each_walk_by_generation_until_stopped():
    clock = heap.CollectorTime()
    clock.start()
    clock.start()  # once only
    try:
        assert gc.callbacks.count(clock._on_collect) == 1
        rings = [Ring() for _ in range(50_000)]
        del rings
        gc.collect()
        assert clock.collections[2] >= 1
        assert clock.seconds[2] > 0
        # the longest full walk: at least the mean of the full walks, at most all of them
        full = clock.seconds[2] / clock.collections[2]
        assert full <= clock.longest[2] <= clock.seconds[2]
        assert clock.total == sum(clock.seconds)
    finally:
        clock.stop()
    assert not clock.watching
    walked = list(clock.collections)
    gc.collect()
    assert clock.collections == walked  # stopped: no longer counted
