"""The tenant side of a gateway's bridges after a take-over (drivers/gateway/linux.py uses it).

The tenant segment's switch learned every remote VM's MAC (a VM of a peer cloud, reached
through one of our tunnel ports) on the port of the gateway that was active. The active's
bridges learned the same MACs on their tunnel ports: `learned_remote` reads them out of the
kernel's FDB dump. After a take-over, the new active sends one RARP per remote MAC (as QEMU's
announce-self does for a migrated VM) out of each bridge port that is not a tunnel port, so
that the switch moves those MACs to this gateway's port at once instead of after its ageing."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from intercloud.domain.remote_macs import MACS_PER_BRIDGE, RemoteMacs, is_unicast_mac

ETH_P_RARP = 0x8035
RARP_REQUEST_REVERSE = 3
ETH_ZLEN = 60  # the shortest Ethernet frame (without FCS): padded like QEMU's
NUD_PERMANENT = 0x80  # a local address of the bridge or a port
NUD_NOARP = 0x40  # a static entry someone added


def rarp_announcement(mac: bytes) -> bytes:
    """RARP "request reverse" from `mac` to everyone, `mac` as sender and target, no addresses:
    a frame every switch learns `mac` from and no host answers."""
    ether = b"\xff" * 6 + mac + struct.pack("!H", ETH_P_RARP)
    rarp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, RARP_REQUEST_REVERSE)
    rarp += mac + b"\x00" * 4 + mac + b"\x00" * 4
    return (ether + rarp).ljust(ETH_ZLEN, b"\x00")


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    kind: str | None
    master: int | None


def links_of(messages: Iterable[Any]) -> dict[int, Link]:
    """pyroute2's link dump as {index: Link}."""
    out = {}
    for msg in messages:
        info = msg.get_attr("IFLA_LINKINFO")
        kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
        index = int(msg["index"])
        out[index] = Link(
            index, msg.get_attr("IFLA_IFNAME") or "", kind, msg.get_attr("IFLA_MASTER")
        )
    return out


def tunnel_ports(links: dict[int, Link], prefix: str) -> set[int]:
    """Our tunnel ports: VXLAN devices named `<prefix>v*`."""
    return {i for i, link in links.items() if link.kind == "vxlan" and link.name.startswith(prefix)}


def learned_remote(links: dict[int, Link], fdb: Iterable[Any], prefix: str) -> RemoteMacs:
    """For each bridge with one of our tunnel ports, the MACs it learned on those ports (not
    local or static entries, not entries of its other ports, not the VXLAN devices' own
    entries), at most MACS_PER_BRIDGE each, sorted; keyed by the bridge's name."""
    tunnels = tunnel_ports(links, prefix)
    bridges = {links[i].master for i in tunnels if links[i].master in links}
    found: dict[str, set[str]] = {}
    for entry in fdb:
        master = entry.get_attr("NDA_MASTER")
        if master not in bridges or entry["ifindex"] not in tunnels:
            continue
        if entry["state"] & (NUD_PERMANENT | NUD_NOARP):
            continue
        mac = str(entry.get_attr("NDA_LLADDR") or "").lower()
        macs = found.setdefault(links[master].name, set())
        if is_unicast_mac(mac) and len(macs) < MACS_PER_BRIDGE:
            macs.add(mac)
    return {bridge: sorted(macs) for bridge, macs in sorted(found.items()) if macs}


def stale_on_tenant_side(
    links: dict[int, Link], fdb: Iterable[Any], prefix: str, macs: RemoteMacs
) -> list[tuple[int, str]]:
    """(port index, MAC) of the FDB entries that put a remote MAC of `macs` behind a tenant
    port of its bridge. A standby's bridge learns them there from the active's floods on the
    tenant segment; once active it would drop a local VM's frame to that MAC (sent back where
    it came from) until the remote VM's own traffic teaches it otherwise. Deleted at
    take-over, the bridge floods such frames into its tunnel ports and learns them there."""
    tunnels = tunnel_ports(links, prefix)
    out = []
    for entry in fdb:
        master = entry.get_attr("NDA_MASTER")
        if master not in links or entry["ifindex"] in tunnels:
            continue
        if entry["state"] & (NUD_PERMANENT | NUD_NOARP):
            continue
        mac = str(entry.get_attr("NDA_LLADDR") or "").lower()
        if mac in macs.get(links[master].name, ()):
            out.append((int(entry["ifindex"]), mac))
    return out


def tenant_ports(
    links: dict[int, Link], prefix: str, bridges: Iterable[str]
) -> dict[str, list[str]]:
    """For each of `bridges` that exists here, the names of its ports that are not our tunnel
    ports (a frame sent into a tunnel port would tell the peers' switches that their own VM
    is behind us)."""
    tunnels = tunnel_ports(links, prefix)
    by_name = {link.name: link for link in links.values() if link.kind == "bridge"}
    out = {}
    for name in bridges:
        bridge = by_name.get(name)
        if bridge is not None:
            out[name] = sorted(
                link.name
                for link in links.values()
                if link.master == bridge.index and link.index not in tunnels
            )
    return out


def send_frames(port: str, frames: list[bytes]) -> int:
    """Every frame out of `port` itself (an AF_PACKET socket bound to a bridge port transmits on
    that device, not through the bridge); the count sent. Raises OSError if the port cannot
    be opened; a frame the device refuses (a full queue) is skipped."""
    sent = 0
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((port, 0))
        for frame in frames:
            try:
                s.send(frame)
            except OSError:
                continue
            sent += 1
    return sent
