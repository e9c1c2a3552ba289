"""Waits until the kernel's own threads are idle: before a timed phase that follows thousands
of deletions (bench/scale.py), and reads each task's /proc/PID/stat for it and for the
scale section's CPU accounting (`tasks`).

A host that reconciles from nothing after a reboot owes the kernel nothing, so the benchmark
makes sure the kernel is not still busy with what came before its clock starts, and says how
long that took. Measured so far (2026-12-07, 3,000 and 10,000): it never was. Deleting 3,000
tunnels and 3,000 bridges in a namespace left the kernel threads idle within a second;
`ip -batch` returns when the kernel is done. The wait stays as a guard that costs one second.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

PF_KTHREAD = 0x00200000  # include/linux/sched.h: the task is a kernel thread
BUSY_BELOW = 0.05  # of one core: what kernel threads use on this VM when nothing happens
WINDOW_S = 1.0


def tasks(proc: Path = Path("/proc")) -> Iterator[tuple[int, str, list[str]]]:
    """(pid, command, the fields of its stat after the command) of every task in `proc`:
    fields[0] is field 3 (state), fields[6] field 9 (flags), fields[11:15] fields 14-17
    (utime, stime, cutime, cstime, in clock ticks). One gone meanwhile is skipped."""
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        close = stat.rindex(")")  # the command may hold spaces and parentheses
        yield int(entry.name), stat[stat.index("(") + 1 : close], stat[close + 2 :].split()


def kernel_threads_cpu(proc: Path = Path("/proc")) -> float:
    """CPU seconds used so far by every kernel thread (PF_KTHREAD in its flags)."""
    ticks = sum(
        int(fields[11]) + int(fields[12])
        for _, _, fields in tasks(proc)
        if int(fields[6]) & PF_KTHREAD
    )
    return ticks / os.sysconf("SC_CLK_TCK")


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
