"""The remote MACs a cloud's active gateway has learned on its tunnel ports, keyed by bridge
name (`{"icb1": ["02:00:00:00:00:42", ...]}`): the active saves them in the cloud's database,
a gateway that takes over announces them on its tenant side (docs/ha.md). What is read back
crossed the database: every name and MAC is checked here, and what fails is dropped."""

from __future__ import annotations

import logging
import re

from intercloud.domain.validation import shown

log = logging.getLogger("intercloud.ha")

MACS_PER_BRIDGE = 4096  # a peer flooding MACs cannot blow the row up
BRIDGES_MAX = 1024

# what the kernel accepts as a name and nothing a log line or command could misread
_IFNAME_RE = re.compile(r"[A-Za-z0-9_.@+=-]{1,15}", re.ASCII)
_MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", re.ASCII)

RemoteMacs = dict[str, list[str]]


def is_ifname(value: object) -> bool:
    return (
        isinstance(value, str)
        and value not in (".", "..")
        and _IFNAME_RE.fullmatch(value) is not None
    )


def is_unicast_mac(value: object) -> bool:
    """`xx:xx:xx:xx:xx:xx` in lower case, neither multicast/broadcast nor all zeros."""
    return (
        isinstance(value, str)
        and _MAC_RE.fullmatch(value) is not None
        and not int(value[:2], 16) & 1
        and value != "00:00:00:00:00:00"
    )


def checked(raw: object, source: str) -> RemoteMacs:
    """The valid part of `raw`: bridges with a valid name, each with its valid unicast MACs
    (no duplicates, at most MACS_PER_BRIDGE, sorted). What is dropped is said in one warning."""
    if not isinstance(raw, dict):
        if raw is not None:
            log.warning("remote MACs from %s dropped: not an object (%s)", source, shown(raw))
        return {}
    out: RemoteMacs = {}
    dropped: list[str] = []
    for bridge, macs in list(raw.items())[:BRIDGES_MAX]:
        if not is_ifname(bridge):
            dropped.append(f"bridge {shown(bridge)}: not an interface name")
            continue
        if not isinstance(macs, list):
            dropped.append(f"bridge {bridge}: not a list")
            continue
        good = sorted({m for m in macs if is_unicast_mac(m)})
        bad = [m for m in macs if not is_unicast_mac(m)]
        if bad:
            dropped.append(f"{len(bad)} on {bridge} (e.g. {shown(bad[0])}): not a unicast MAC")
        if len(good) > MACS_PER_BRIDGE:
            dropped.append(f"{len(good) - MACS_PER_BRIDGE} on {bridge}: over the limit")
        if good:
            out[bridge] = good[:MACS_PER_BRIDGE]
    if len(raw) > BRIDGES_MAX:
        dropped.append(f"{len(raw) - BRIDGES_MAX} bridges over the limit")
    if dropped:
        log.warning("remote MACs from %s: dropped %s", source, "; ".join(dropped[:5]))
    return out
