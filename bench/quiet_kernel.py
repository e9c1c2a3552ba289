"""Waits until the kernel's own threads are idle: before a timed phase that follows thousands
of deletions (bench/scale.py).

Deleting 20,000 interfaces returns long before the kernel has freed them: kworkers, RCU and
softirq threads go on for seconds to minutes, on the same two cores as what is timed next. At
10,000 expansions the agent's start then took 4.7 s where it takes 1.8 s on a quiet machine
(2026-12-07). A host that reconciles from nothing after a reboot has no such debt, so the
benchmark pays it before its clock starts, and says how long that took.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

PF_KTHREAD = 0x00200000  # include/linux/sched.h: the task is a kernel thread
BUSY_BELOW = 0.05  # of one core: what kernel threads use on this VM when nothing happens
WINDOW_S = 1.0


def kernel_threads_cpu(proc: Path = Path("/proc")) -> float:
    """CPU seconds used so far by every kernel thread (PF_KTHREAD in its flags)."""
    tick = os.sysconf("SC_CLK_TCK")
    ticks = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()  # fields[0] is field 3 (state)
        if int(fields[6]) & PF_KTHREAD:  # field 9: flags; 14, 15: utime, stime
            ticks += int(fields[11]) + int(fields[12])
    return ticks / tick


def wait_until_quiet(
    max_s: float,
    used: Callable[[], float] = kernel_threads_cpu,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> float:
    """Blocks until kernel threads used less than BUSY_BELOW of a core over one WINDOW_S, or
    `max_s` passed; the seconds it waited (the caller reports them)."""
    start = clock()
    before = used()
    while True:
        sleep(WINDOW_S)
        now = used()
        if now - before < BUSY_BELOW * WINDOW_S or clock() - start >= max_s:
            return round(clock() - start, 2)
        before = now
