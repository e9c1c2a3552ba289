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

from pyroute2 import netns as pyroute2_netns

from intercloud.domain.hoststate import Observed

log = logging.getLogger("intercloud.dataplane")

NETLINK_ROUTE, NETLINK_NETFILTER = 0, 12
RTMGRP_LINK, RTMGRP_TC = 0x1, 0x8  # every interface (bridge ports too), every qdisc
NFNLGRP_NFTABLES = 7
MAX_AGE = 60.0  # seconds a quiet kernel's last observation is trusted, events or not
CHUNK = 1 << 16


def _open(netns: str | None, proto: int, groups: int) -> socket.socket:
    if netns:  # made in the namespace (never created: flags 0), as the driver's netlink
        sock = pyroute2_netns.create_socket(
            netns, socket.AF_NETLINK, socket.SOCK_RAW, proto, flags=0
        )
    else:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, proto)
    try:
        sock.bind((0, groups))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class KernelChanges:
    """`quiet()`: no change since `reading()` was last called (see the module's doc)."""

    def __init__(self, netns: str | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._read_at: float | None = None
        self._socks: list[socket.socket] = []
        try:
            self._socks.append(_open(netns, NETLINK_ROUTE, RTMGRP_LINK | RTMGRP_TC))
            self._socks.append(_open(netns, NETLINK_NETFILTER, 1 << (NFNLGRP_NFTABLES - 1)))
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
            while True:
                try:
                    if not sock.recv(CHUNK):
                        break
                except BlockingIOError:
                    break
                except OSError as exc:  # ENOBUFS: messages were lost; what is queued is read on
                    if exc.errno != errno.ENOBUFS:
                        log.info("dataplane: kernel change events: %s", exc)
                        changed = True
                        break
                changed = True
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
            last = self._last = (foreign, read(foreign))
        seen = last[1]
        return dataclasses.replace(seen, state=seen.state.copy(), kinds=dict(seen.kinds))
