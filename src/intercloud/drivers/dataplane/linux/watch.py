"""Whether the kernel changed anything the Linux driver observes since its last full read.

A converged pass reads every interface, qdisc and nft set (10,000 tunnel ports: ~2 s of dumps
and decoding) to find nothing changed. The kernel says when something does: rtnetlink sends a
message to the link and tc groups for every interface or qdisc made, changed or deleted, and
nfnetlink one to the nftables group for every table, set or rule changed. So the driver keeps
two sockets subscribed to those groups and reads them without decoding: a message, or a
receive queue that overflowed, means "read again". Nothing read means nothing changed, and the
last observation still holds. A full read still happens at least every MAX_AGE seconds."""

from __future__ import annotations

import dataclasses
import errno
import logging
import socket
import time
from collections.abc import Callable

from intercloud.domain.hoststate import Observed
from intercloud.drivers.nsexec import netlink_socket

log = logging.getLogger("intercloud.dataplane")

NETLINK_ROUTE, NETLINK_NETFILTER = 0, 12
RTMGRP_LINK, RTMGRP_TC = 0x1, 0x8  # every interface (bridge ports too), every qdisc
NFNLGRP_NFTABLES = 7
MAX_AGE = 60.0  # seconds a quiet kernel's last observation is trusted, events or not
CHUNK = 1 << 16
SO_RCVBUFFORCE = 33  # asm-generic/socket.h; not in `socket`


def subscribed(
    netns: str | None, proto: int, groups: int, receive_buffer: int = 0
) -> socket.socket:
    """A non-blocking netlink socket in `netns` (None: here) that receives the multicast
    `groups` of `proto`; with a `receive_buffer` of that many bytes (0: the kernel's default).
    Its messages can be read away with `drain`."""
    sock = netlink_socket(netns, proto)
    try:
        if receive_buffer:  # beyond rmem_max: SO_RCVBUFFORCE (root)
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, receive_buffer)
        sock.bind((0, groups))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def drain(sock: socket.socket, each: Callable[[bytes], None] | None = None) -> tuple[int, bool]:
    """Reads every datagram queued on a non-blocking `sock` away, each given to `each`: (how
    many, whether the kernel dropped some because the queue was full: ENOBUFS, after which
    what is still queued is read on). Other errors raise."""
    read, lost = 0, False
    while True:
        try:
            data = sock.recv(CHUNK)
        except BlockingIOError:
            return read, lost
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise
            lost = True
            continue
        if not data:
            return read, lost
        read += 1
        if each is not None:
            each(data)


class KernelChanges:
    """`quiet()`: no change since `reading()` was last called (see the module's doc)."""

    def __init__(self, netns: str | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._read_at: float | None = None
        self._socks: list[socket.socket] = []
        try:
            self._socks.append(subscribed(netns, NETLINK_ROUTE, RTMGRP_LINK | RTMGRP_TC))
            self._socks.append(subscribed(netns, NETLINK_NETFILTER, 1 << (NFNLGRP_NFTABLES - 1)))
        except Exception as exc:  # without them every pass reads the kernel, as before
            log.info("dataplane: no kernel change events (%s): every pass reads it all", exc)
            self.close()

    @property
    def available(self) -> bool:
        return bool(self._socks)

    def reading(self) -> None:
        """A full read starts now: what happened before it is in it. (Drained before the
        read, so that a change during it leaves a message for the next `quiet()`.)"""
        self._drain()
        self._read_at = self.clock()

    def quiet(self) -> bool:
        """Nothing changed since the last full read began, and that read is recent."""
        if not self._socks or self._read_at is None:
            return False
        if self.clock() - self._read_at >= MAX_AGE:
            return False
        return not self._drain()

    def _drain(self) -> bool:
        """Read every queued message away; whether there was any (or an overflow)."""
        changed = False
        for sock in self._socks:
            try:
                read, lost = drain(sock)
            except OSError as exc:
                log.info("dataplane: kernel change events: %s", exc)
                changed = True
                continue
            changed = changed or bool(read) or lost
        return changed

    def close(self) -> None:
        for sock in self._socks:
            sock.close()
        self._socks = []


class LastObservation:
    """The driver's last full observation, handed out again while the kernel is quiet."""

    def __init__(self, changes: KernelChanges) -> None:
        self.changes = changes
        self._last: tuple[frozenset[str], Observed] | None = None

    def get(self, foreign: frozenset[str], read: Callable[[frozenset[str]], Observed]) -> Observed:
        """The observation of our objects and of the `foreign` interfaces' kinds: the last one
        if it covered them and nothing changed since, else `read(foreign)`. Always a copy (a
        caller may change what it is given)."""
        last = self._last
        if last is None or not foreign <= last[0] or not self.changes.quiet():
            self.changes.reading()
            self._last = last = None  # let go before reading: not two at the read's peak
            last = self._last = (foreign, read(foreign))
        seen = last[1]
        return dataclasses.replace(seen, state=seen.state.copy(), kinds=dict(seen.kinds))
