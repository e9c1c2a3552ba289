"""Reading a netlink socket's queue away (drivers/dataplane/linux/watch.drain), and what the
driver's change events make of it: a socket whose `recv` is scripted here."""

from __future__ import annotations

import errno

import pytest

from intercloud.drivers.dataplane.linux import watch


class Sock:
    def __init__(self, *script: bytes | OSError) -> None:
        self.script = list(script)

    def recv(self, size: int) -> bytes:
        if not self.script:
            raise BlockingIOError
        step = self.script.pop(0)
        if isinstance(step, OSError):
            raise step
        return step

    def close(self) -> None:
        pass


def test_every_datagram_is_read_and_an_overflow_is_reported_not_raised():
    got: list[bytes] = []
    sock = Sock(b"a", OSError(errno.ENOBUFS, "lost"), b"b")
    assert watch.drain(sock, got.append) == (2, True)  # type: ignore[arg-type]
    assert got == [b"a", b"b"]  # what was queued after the overflow is read on
    assert watch.drain(Sock(), got.append) == (0, False)  # type: ignore[arg-type]


def test_another_error_raises():
    with pytest.raises(OSError, match="gone"):
        watch.drain(Sock(b"a", OSError(errno.EBADF, "gone")))  # type: ignore[arg-type]


def changes(*socks: Sock) -> watch.KernelChanges:
    kc = watch.KernelChanges.__new__(watch.KernelChanges)
    kc.clock, kc._read_at, kc._socks = (lambda: 0.0), None, list(socks)  # type: ignore[assignment]
    return kc


def test_kernel_changes_quiet_only_when_no_socket_had_anything():
    quiet, busy = Sock(), Sock(b"x")
    kc = changes(quiet, busy)
    kc.reading()  # drains: busy's message happened before the read
    assert kc.quiet()
    busy.script = [OSError(errno.ENOBUFS, "lost")]
    assert not kc.quiet()  # lost messages are changes too
    assert kc.quiet()
    quiet.script = [OSError(errno.EBADF, "gone")]
    assert not kc.quiet()  # a socket that fails cannot vouch for anything
