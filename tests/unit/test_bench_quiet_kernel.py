"""The scale benchmark waits for the kernel's own threads to be idle before its from-nothing
clock starts (bench/quiet_kernel.py): a /proc made here, and a clock of its own."""

import os
from pathlib import Path

from bench import quiet_kernel as qk


def stat_line(pid: int, comm: str, flags: int, utime: int, stime: int) -> str:
    # fields 3.. : state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    return f"{pid} ({comm}) S 2 0 0 0 -1 {flags} 0 0 0 0 {utime} {stime} 0 0 20 0 1 0\n"


def test_kernel_threads_cpu_counts_kernel_threads_only(tmp_path: Path):
    tick = os.sysconf("SC_CLK_TCK")
    for pid, comm, flags, utime, stime in (
        (10, "kworker/u8:0-events (x)", qk.PF_KTHREAD | 0x40, 0, 3 * tick),
        (11, "rcu_preempt", qk.PF_KTHREAD, tick, tick),
        (900, "python3", 0x400000, 50 * tick, 50 * tick),  # a process: not counted
    ):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(stat_line(pid, comm, flags, utime, stime))
    (tmp_path / "12").mkdir()  # gone meanwhile: no stat
    (tmp_path / "meminfo").write_text("not a process\n")
    assert qk.kernel_threads_cpu(tmp_path) == 5.0


class Kernel:
    """Kernel threads that use `busy` of a core for each window in `windows`, then nothing."""

    def __init__(self, windows: int, busy: float) -> None:
        self.t = self.used = 0.0
        self.windows, self.busy = windows, busy

    def sleep(self, s: float) -> None:
        self.t += s
        if self.windows:
            self.windows -= 1
            self.used += self.busy * s


def test_waits_until_a_whole_window_is_quiet():
    k = Kernel(windows=3, busy=0.5)
    waited = qk.wait_until_quiet(60, lambda: k.used, k.sleep, lambda: k.t)
    assert waited == 4 * qk.WINDOW_S  # three busy windows, then the quiet one


def test_returns_at_once_on_a_quiet_kernel_and_gives_up_at_max():
    k = Kernel(windows=0, busy=0.0)
    assert qk.wait_until_quiet(60, lambda: k.used, k.sleep, lambda: k.t) == qk.WINDOW_S
    k = Kernel(windows=1000, busy=1.0)
    assert qk.wait_until_quiet(10, lambda: k.used, k.sleep, lambda: k.t) == 10.0
