"""Helpers for integration tests: packet captures inside lab namespaces (waiting is
tests/waiting.py)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Capture:
    """tcpdump in a namespace, text output with link-level headers (-e)."""

    def __init__(self, netns: str, interface: str, bpf: str = "") -> None:
        self.netns, self.interface, self.bpf = netns, interface, bpf
        self.lines: list[str] = []
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        argv = [
            "ip",
            "netns",
            "exec",
            self.netns,
            "tcpdump",
            "-i",
            self.interface,
            "-nn",
            "-e",
            "-l",
            "-U",
        ]
        if self.bpf:
            argv += self.bpf.split()
        self._proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self._proc.stderr is not None
        seen = []
        while True:  # "listening on ..." comes once the capture socket is open
            line = self._proc.stderr.readline()
            seen.append(line)
            if "listening on" in line:
                return
            if not line:
                raise AssertionError(f"tcpdump did not start: {''.join(seen)!r}")

    def stop(self) -> list[str]:
        assert self._proc is not None
        time.sleep(0.5)  # packets still on their way; nothing tells when the last is in
        self._proc.terminate()
        out, _ = self._proc.communicate(timeout=10)
        self.lines = [ln for ln in out.splitlines() if ln.strip()]
        return self.lines


@contextmanager
def capture(netns: str, interface: str, bpf: str = "") -> Iterator[Capture]:
    cap = Capture(netns, interface, bpf)
    cap.start()
    try:
        yield cap
    finally:
        cap.stop()
