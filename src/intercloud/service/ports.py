"""OpenStack: the VMs of each cloud of a network, told across so every cloud can make
placeholder ports for the others' (security groups admit them, no address is taken twice)."""

from __future__ import annotations

import ipaddress

from sqlalchemy.orm import Session

from intercloud.domain import validation as v
from intercloud.errors import Invalid
from intercloud.service.adjacencies import target_of
from intercloud.store import models as m


def _in_slice(ip: str, pool: list[list[str]]) -> bool:
    addr = ipaddress.ip_address(ip)

    def within(first: str, last: str) -> bool:
        lo, hi = ipaddress.ip_address(first), ipaddress.ip_address(last)
        return lo.version == addr.version == hi.version and int(lo) <= int(addr) <= int(hi)

    return any(within(a, b) for a, b in pool)


def report(s: Session, peer: m.Peer, uid: str, ports: list) -> tuple[list[list[str]], bool]:
    """A target of our expansion `uid` reports the ports of its replica. Returns them as
    stored, and whether they changed. Each address must lie in the slice of the pool we gave
    that peer (addressing.for_target): anywhere else in the CIDR it would be our own VMs' or
    another member's, and its placeholder would take that address from them. Except a VM that
    moved there (live migration): the same MAC and IP as a VM the network already has (ours or
    another member's, as we told the peer, or as it reported before)."""
    target = target_of(s, peer, uid)
    ports = v.port_list(ports, target.expansion.cidr)
    known = {(mac, ip) for mac, ip in (target.addressing_sent or {}).get("ports", [])}
    for t in target.expansion.targets:
        known |= {(mac, ip) for mac, ip in t.peer_ports or []}
    outside = [
        ip for mac, ip in ports if not _in_slice(ip, target.pool or []) and (mac, ip) not in known
    ]
    if outside:
        raise Invalid(
            f"ports: {', '.join(outside[:8])} not in the addresses given to {peer.name!r} "
            f"in expansion {uid!r}",
            field="ports",
        )
    if ports == (target.peer_ports or []):
        return ports, False
    target.peer_ports = ports
    return ports, True
