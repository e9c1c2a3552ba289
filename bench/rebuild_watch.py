"""Waits until the agent's devices exist and are up again in a namespace, costing the measured
machine as little as it can: the clock of "reconcile from nothing" (bench/scale.py).

It listens to rtnetlink's link events on one socket, opened in the namespace and subscribed
before the agent starts, and reads each event down to the interface's name and its IFF_UP
flag. Polling cost the two cores the agent shares with it: `ip -o link show` five times a
second took 0.36 s of CPU in a 2.9 s window at 1,000 expansions, and the namespace's
/proc/net/dev ten times a second took 6.5 s in a 19 s window at 10,000 (the kernel formats a
line for each of 20,000 interfaces at every read; 2026-12-07). When the kernel drops events
(the socket's queue overflowed) it falls back to asking `ip` four times a second. The end is
confirmed once by `ip`, and the time returned is when the events showed it.
"""

from __future__ import annotations

import select
import struct
import time
from collections.abc import Callable, Iterable, Iterator

from intercloud.drivers.dataplane.linux import watch
from intercloud.drivers.dataplane.linux.watch import NETLINK_ROUTE, RTMGRP_LINK

RTM_NEWLINK, RTM_DELLINK = 16, 17
IFLA_IFNAME = 3
IFF_UP = 0x1
NLMSG_HEADER, IFINFOMSG = 16, 16
RECEIVE_BUFFER = 256 << 20  # 10,000 tunnels make ~40,000 events of ~1.5 KB within seconds
POLL_S = 0.25  # after a lost event


def is_ours(name: str) -> bool:
    return name.startswith("ic") and len(name) > 2


def ours(names: Iterable[str]) -> dict[str, int]:
    """How many of the agent's devices are among `names`, by kind: the first 3 letters of
    their name (icv: VXLAN; icb: bridges, icp/icq: veth ends, only where a layout needs them)."""
    counts: dict[str, int] = {}
    for name in names:
        if is_ours(name):
            counts[name[:3]] = counts.get(name[:3], 0) + 1
    return counts


def link_events(data: bytes) -> Iterator[tuple[int, str, int]]:
    """(message type, interface name, interface flags) of each RTM_NEWLINK or RTM_DELLINK in
    one datagram of the link group; other messages are skipped."""
    offset = 0
    while offset + NLMSG_HEADER <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if length < NLMSG_HEADER or offset + length > len(data):
            return
        if kind in (RTM_NEWLINK, RTM_DELLINK) and length >= NLMSG_HEADER + IFINFOMSG:
            # ifinfomsg: family, pad, type, index, then flags
            (flags,) = struct.unpack_from("=I", data, offset + NLMSG_HEADER + 8)
            name = _ifname(data, offset + NLMSG_HEADER + IFINFOMSG, offset + length)
            if name:
                yield kind, name, flags
        offset += (length + 3) & ~3


def _ifname(data: bytes, start: int, end: int) -> str:
    while start + 4 <= end:
        size, kind = struct.unpack_from("=HH", data, start)
        if size < 4:
            return ""
        if kind == IFLA_IFNAME:
            return data[start + 4 : start + size].split(b"\0", 1)[0].decode(errors="replace")
        start += (size + 3) & ~3
    return ""


class RebuildWatch:
    """Made before the agent starts; `wait()` returns once the agent's devices up, counted by
    kind (`ours`), are `kinds` exactly. `names(up)`: the namespace's interface names (only
    those up: `up`), as `ip` lists them."""

    def __init__(self, ns: str, kinds: dict[str, int], names: Callable[[bool], list[str]]) -> None:
        self.ns, self.kinds, self.names = ns, kinds, names
        # in a thread that enters the namespace, not a forked copy of the benchmark (a copy's
        # SIGTERM handler ran its cleanup and took the labs down): drivers/nsexec.py
        self.sock = watch.subscribed(ns, NETLINK_ROUTE, RTMGRP_LINK, RECEIVE_BUFFER)
        # subscribed first: whatever changes after this read is in the events
        up = set(names(True))
        self.present = {name: name in up for name in names(False) if is_ours(name)}
        self.up = ours(name for name, is_up in self.present.items() if is_up)  # kept counted
        self.lost = False

    def _seen(self, name: str, up: bool | None) -> None:
        """`name` is now up, down, or gone (None)."""
        was = self.present.pop(name, None) if up is None else self.present.get(name)
        if up is not None:
            self.present[name] = up
        change = int(bool(up)) - int(bool(was))
        if change:
            self.up[name[:3]] = self.up.get(name[:3], 0) + change
            if not self.up[name[:3]]:
                del self.up[name[:3]]

    def _read_events(self) -> None:
        _, lost = watch.drain(self.sock, self._decode)
        self.lost = self.lost or lost  # events were dropped: the counts cannot be trusted

    def _decode(self, data: bytes) -> None:
        for kind, name, flags in link_events(data):
            if is_ours(name):
                self._seen(name, None if kind == RTM_DELLINK else bool(flags & IFF_UP))

    def wait(self, timeout: float) -> float:
        """Blocks until done; the time.monotonic() at which the devices were all up."""
        deadline = time.monotonic() + timeout
        try:
            done = self._events_until(deadline)
            if self.lost:  # the end was read from `ip` already
                return done
            while ours(self.names(True)) != self.kinds:  # confirmed by the kernel's own list
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not every device up in {self.ns} in {timeout:.0f} s")
                time.sleep(0.05)
                done = time.monotonic()
            return done
        finally:
            self.close()

    def close(self) -> None:
        self.sock.close()

    def _events_until(self, deadline: float) -> float:
        while not self.lost:
            if self.up == self.kinds:
                return time.monotonic()
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"devices up in {self.ns}: {self.up}, not {self.kinds}")
            select.select([self.sock], [], [], min(left, 1.0))
            self._read_events()
        while (up := ours(self.names(True))) != self.kinds:  # events lost: ask `ip`
            if time.monotonic() > deadline:
                raise RuntimeError(f"devices up in {self.ns}: {up}, not {self.kinds}")
            time.sleep(POLL_S)
        return time.monotonic()
