"""Argv inside a network namespace, one way: for the drivers that shell out (iproute2's JSON
dumps and batches, nft, the IPsec lanes' rules). A namespace is a name under /var/run/netns or
a path."""

from __future__ import annotations


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
