"""OpenStack: the VMs of each cloud of a network, told across so every cloud can make
placeholder ports for the others' (security groups admit them, no address is taken twice)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from intercloud.domain import validation as v
from intercloud.service.mesh import target_of
from intercloud.store import models as m


def report(s: Session, peer: m.Peer, uid: str, ports: list) -> tuple[list[list[str]], bool]:
    """A target of our expansion `uid` reports the ports of its replica. Returns them as
    stored, and whether they changed."""
    target = target_of(s, peer, uid)
    ports = v.port_list(ports, target.expansion.cidr)
    if ports == (target.peer_ports or []):
        return ports, False
    target.peer_ports = ports
    return ports, True
