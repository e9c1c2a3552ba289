"""Work inside a network namespace, two ways: argv for the drivers that shell out (iproute2's
JSON dumps and batches, nft, the IPsec lanes' rules), and netlink sockets for those that speak
netlink (rtnetlink requests, the kernel's change events). A namespace is a name under
/var/run/netns or a path."""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from typing import Any

NETNS_RUN_DIR = "/var/run/netns"  # where `ip netns add` mounts named namespaces
CLONE_NEWNET = 0x40000000


def in_netns(argv: list[str], netns: str | None) -> list[str]:
    """`argv` to run in `netns` (None: here). iproute2's own tools take `-n`; a namespace given
    by path goes through nsenter; anything else through `ip netns exec`."""
    if not netns:
        return argv
    if "/" in netns:
        return ["nsenter", f"--net={netns}", *argv]
    if argv[0] in ("ip", "tc", "bridge"):
        return [argv[0], "-n", netns, *argv[1:]]
    return ["ip", "netns", "exec", netns, *argv]


def netns_path(netns: str) -> str:
    return netns if "/" in netns else f"{NETNS_RUN_DIR}/{netns}"


def netlink_socket(netns: str | None, proto: int, kind: int = socket.SOCK_RAW) -> socket.socket:
    """An AF_NETLINK socket of protocol `proto` in `netns` (None: here). A socket belongs to
    the namespace it was made in, and a namespace is a thread's: a thread of its own enters
    `netns` (setns), makes the socket and ends, and the caller's threads never move. Not
    pyroute2's `netns.create_socket`, which forks the whole process for it: the copy of a
    threaded agent or benchmark holds its locks as they were, and runs their signal handlers
    (a benchmark's SIGTERM handler in that copy ran its cleanup and took its labs down).
    FileNotFoundError if the namespace does not exist; OSError if it cannot be entered."""
    if not netns:
        return socket.socket(socket.AF_NETLINK, kind, proto)
    path = netns_path(netns)
    libc = ctypes.CDLL(None, use_errno=True)
    made: list[socket.socket] = []
    failed: list[OSError] = []

    def enter_and_make() -> None:
        try:
            with open(path) as f:
                if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
                    code = ctypes.get_errno()
                    raise OSError(code, f"cannot enter {netns}: {os.strerror(code)}")
            made.append(socket.socket(socket.AF_NETLINK, kind, proto))
        except OSError as exc:
            failed.append(exc)

    thread = threading.Thread(target=enter_and_make, name=f"netns {netns}", daemon=True)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return made[0]


def iproute_in(netns: str | None) -> Any:
    """pyroute2's IPRoute in `netns` (None: here), on a socket made by `netlink_socket`."""
    from pyroute2 import IPRoute  # only the drivers that speak rtnetlink pay its import

    if not netns:
        return IPRoute()
    fd = netlink_socket(netns, socket.NETLINK_ROUTE, socket.SOCK_DGRAM).detach()
    try:
        return IPRoute(fileno=fd)
    except BaseException:
        os.close(fd)
        raise
