"""The one way an integration test owns network namespaces: unique names, loopback up, veths
between them, and every one gone at teardown (what still runs in it stopped first), even when
the test fails. The `namespaces` fixture (tests/integration/conftest.py) gives one `Namespaces`
per test; a module-scoped lab uses the class itself, as a context manager."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=60)


class Namespaces:
    """`make(role)` adds `<prefix><role>-<uuid8>` and returns its name; `add(name)` adds one
    named by the caller (unique through a token of its own); `adopt(name)` deletes one made
    elsewhere at teardown too; `close()` deletes them all, the last made first."""

    def __init__(self, prefix: str = "ictest-") -> None:
        self.prefix = prefix
        self.made: list[str] = []

    def make(self, role: str = "ns") -> str:
        return self.add(f"{self.prefix}{role}-{uuid.uuid4().hex[:8]}")

    __call__ = make

    def add(self, name: str) -> str:
        self.made.append(name)  # first: a namespace half made is deleted too
        ip("netns", "add", name)
        ip("-n", name, "link", "set", "lo", "up")
        return name

    def adopt(self, name: str) -> str:
        self.made.append(name)
        return name

    def veth(self, ns1: str, if1: str, ns2: str, if2: str) -> None:
        """A veth pair, `if1` in `ns1` and `if2` in `ns2`, both down and without addresses."""
        ip("-n", ns1, "link", "add", if1, "type", "veth", "peer", "name", if2, "netns", ns2)

    def __iter__(self) -> Iterator[str]:
        return iter(self.made)

    def __len__(self) -> int:
        return len(self.made)

    def close(self) -> None:
        """Every namespace made or adopted, each even if an earlier one failed to go; then
        fails naming any that is still there."""
        left = []
        while self.made:
            name = self.made.pop()
            if os.path.exists(f"/run/netns/{name}"):
                stop(int(pid) for pid in ip("netns", "pids", name, check=False).stdout.split())
                ip("netns", "del", name, check=False)
                if os.path.exists(f"/run/netns/{name}"):
                    left.append(name)
        assert not left, f"namespaces not deleted: {left}"

    def __enter__(self) -> Namespaces:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stop(pids: Iterable[int], grace: float = 3.0) -> None:
    """SIGTERM (a charon removes its sockets and pid file), SIGKILL what is left after `grace`."""
    left = [pid for pid in pids if pid != os.getpid()]
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 1.0)):
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while left and time.monotonic() < deadline:
            left = [pid for pid in left if _alive(pid)]
            if left:
                time.sleep(0.05)  # polling the processes' exit: no event to wait on
        if not left:
            return


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie is gone
    except FileNotFoundError:
        return False
