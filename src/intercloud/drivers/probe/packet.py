"""The packet socket of the tunnel probes and what the kernel tells through it (Linux only):
opening it for the probe ethertype, a device's own address, and the answers' rate per port."""

from __future__ import annotations

import contextlib
import fcntl
import socket
import struct
from collections.abc import Collection

from intercloud.domain import probe as p
from intercloud.drivers.probe.ports import Budget

PACKET_OUTGOING = 4  # linux/if_packet.h: a frame we sent, looped back to packet sockets
SIOCGIFHWADDR = 0x8927
SOL_PACKET, PACKET_IGNORE_OUTGOING, PACKET_QDISC_BYPASS = 263, 23, 20
SO_RCVBUFFORCE = 33
SO_TIMESTAMPNS = 35  # (asm-generic; SCM_TIMESTAMPNS is the same number) not in `socket`
RCVBUF = 4 << 20  # a second of answers and requests of 1,000 ports, with room
_TIMESPEC = struct.Struct("@qq")
ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size)


def open_socket() -> socket.socket:
    """A non-blocking packet socket for the probe ethertype (the kernel hands it probe frames
    only), in the calling thread's network namespace. OSError without CAP_NET_RAW."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(p.ETHERTYPE))
    sock.setblocking(False)
    # probes go straight to the tunnel device, not through its qdisc (an expansion's rate
    # limit): less work per frame, and a probe is never queued behind tenant traffic
    with contextlib.suppress(OSError):
        sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
    # nor are our own frames looped back to be read and dropped (Linux 4.20; older kernels
    # hand them over marked PACKET_OUTGOING, and the prober skips them)
    with contextlib.suppress(OSError):
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    # each frame read carries when it arrived: a round trip is the network's, not the time the
    # frame waited for the agent's interpreter (a long reconciler pass holds it)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    return sock


def arrival(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    """The kernel's receive time (epoch seconds) in a frame's ancillary data, if there."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            return sec + nsec / 1e9
    return None


def mac_of(sock: socket.socket, ifname: str) -> bytes | None:
    """The device's own unicast address (the source of what we send into it), None if it is
    gone (in the socket's namespace)."""
    try:
        raw = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, struct.pack("256s", ifname.encode()))
    except (OSError, UnicodeError):
        return None
    mac = raw[18:24]
    return mac if len(mac) == 6 and not mac[0] & 1 else None


class AnswerRate:
    """A token bucket per port (ports.Budget): at most ANSWER_RATE answers a second,
    ANSWER_BURST at once."""

    def __init__(self) -> None:
        self._buckets: dict[str, Budget] = {}

    def take(self, port: str, now: float) -> bool:
        bucket = self._buckets.get(port)
        if bucket is None:
            bucket = self._buckets[port] = Budget(p.ANSWER_RATE, p.ANSWER_BURST, now)
        return bucket.take(now)

    def keep_only(self, ports: Collection[str]) -> None:
        """Forget the buckets of ports that are gone."""
        if len(self._buckets) > len(ports):
            for name in set(self._buckets) - set(ports):
                del self._buckets[name]
