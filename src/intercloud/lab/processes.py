"""The lab's long-running processes (agents, charons, the OpenStack services): started in a new
session inside a namespace, found again by pid (lab.json), stopped with SIGTERM then SIGKILL.

Such a daemon outlives the call that started it, and usually the `Lab` object too (`lab up`
returns while its agents run on). Its `Popen` stays in this module's table for the life of the
process that started it, so it is never garbage-collected while the daemon runs ("subprocess N
is still running"); `kill_pids` and `reap` collect its exit status when it stops.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

_STARTED: dict[int, subprocess.Popen[bytes]] = {}  # pid -> the Popen that started it


def start_daemon(
    argv: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    new_session: bool = True,
) -> int:
    """Start argv with stdin from /dev/null and its output appended to `log`; its pid."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=new_session,
        )
    _STARTED[proc.pid] = proc
    return proc.pid


def exit_code(pid: int) -> int | None:
    """The exit status of a daemon this process started, once it ended (None while it runs or
    when another process started it)."""
    proc = _STARTED.get(pid)
    return proc.poll() if proc is not None else None


def reap(pid: int, timeout: float = 5.0) -> None:
    """Collect the exit status of a daemon this process started (no-op for others)."""
    proc = _STARTED.pop(pid, None)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)


def wait_gone(pid: int, timeout: float = 5.0) -> None:
    """Until `pid` has exited (gone, or a zombie: its files are closed), at most `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.01)


def still_running() -> dict[int, list[str]]:
    """The daemons this process started that still run: pid -> argv."""
    return {pid: pid_cmdline(pid) for pid, p in list(_STARTED.items()) if p.poll() is None}


def pid_alive(pid: int | None) -> bool:
    """True if pid runs (a zombie child is reaped and counts as dead)."""
    if not pid:
        return False
    proc = _STARTED.get(pid)
    if proc is not None and proc.poll() is not None:
        return False
    try:
        if proc is None and os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def pid_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def kill_pids(pids: Sequence[int], timeout: float = 5.0) -> None:
    """SIGTERM, wait up to timeout, then SIGKILL whatever is left."""
    pids = [p for p in pids if p != os.getpid()]
    left = list(pids)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 2.0)
        while time.monotonic() < deadline:
            left = [p for p in left if pid_alive(p)]
            if not left:
                break
            time.sleep(0.05)
        if not left:
            break
    for pid in pids:
        reap(pid, timeout=1.0)
