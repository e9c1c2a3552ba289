"""What each network wants of this host, read from the store for desired.build: its local
side, its tunnel ports (and why one must stay down), the pairs it relays; every link's view."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from intercloud.domain import owners
from intercloud.drivers.cloud.base import ReplicaSync
from intercloud.reconciler.connections import Readiness
from intercloud.reconciler.desired import LinkView, NetworkWant, PortWant
from intercloud.reconciler.members import REPLICAS_WITH_ADJACENCIES
from intercloud.reconciler.parts import Parts
from intercloud.reconciler.relays import Routed
from intercloud.service import budget
from intercloud.store import models as m

UNKNOWN = Readiness(False, "unknown")


@dataclass(frozen=True)
class Wants:
    networks: list[NetworkWant]
    links: dict[str, LinkView]  # by peer name
    foreign: list[str]  # interfaces not ours that our networks may join (the cloud's)


def read(
    parts: Parts,
    ready: dict[str, Readiness],
    down: dict[str, str],
    made: ReplicaSync,
    routed: Routed,
) -> Wants:
    with parts.store.session() as s:
        links = _links(parts, s, ready)
        networks = _expansions(parts, routed) + _replicas(s, down, made)
    foreign = sorted(
        {n.interface for n in parts.cloud.all_networks()} | set(made.interfaces.values())
    )
    return Wants(networks, links, foreign)


def _links(parts: Parts, s: Session, ready: dict[str, Readiness]) -> dict[str, LinkView]:
    links = {}
    for lk in s.scalars(select(m.Link)):
        outcome = ready.get(lk.peer.name, UNKNOWN)
        links[lk.peer.name] = LinkView(
            lk.peer.name,
            lk.local_endpoint,
            lk.peer_tunnel_endpoint or lk.remote_endpoint,
            lk.enabled,
            ready=outcome.ready,
            not_ready_reason=outcome.reason,
            mss=budget.link_budget(lk).mss if parts.dataplane.clamps_mss else None,
        )
    return links


def _expansions(parts: Parts, routed: Routed) -> list[NetworkWant]:
    """The networks we expanded (origin side)."""
    networks = []
    for exp in parts.rows.live():
        net = parts.cloud.network(exp.project, exp.network)
        # a target another member relays us to: our own tunnel port to it stays down
        ports = tuple(
            PortWant(
                owners.target(t.id),
                t.peer,
                t.vni,
                exp.rate_to(t),
                blocked=f"reached through {routed.rerouted[t.id].via}"
                if t.id in routed.rerouted
                else "",
            )
            for t in exp.targets
        )
        plan = routed.plans.get(exp.id)
        forward = plan.forward.get(parts.me, frozenset()) if plan else frozenset()
        key = owners.expansion(exp.id).key
        networks.append(NetworkWant(key, net.interface if net else "", ports, forward))
    return networks


def _replicas(s: Session, down: dict[str, str], made: ReplicaSync) -> list[NetworkWant]:
    """The networks we replicate for peers (member side)."""
    networks = []
    for rep in s.scalars(REPLICAS_WITH_ADJACENCIES):
        # OpenStack: the network made for it in the cloud is its local side
        local = made.interfaces.get(rep.uid)
        failed = made.errors.get(rep.uid, "")  # the cloud refused its network
        why_not = ""
        if rep.addressing is not None and local is None and not failed:
            why_not = "waiting for its network in this cloud"
        ports: tuple[PortWant, ...] = (PortWant(owners.replica(rep.id), rep.peer.name, rep.vni),)
        # A direct tunnel is only worth it while its peer answers: otherwise the path may be
        # cut, and the origin's relay is the safe way round (domain/relay.py).
        ports += tuple(
            PortWant(
                owners.adjacency(a.id),
                a.peer.name,
                a.vni,
                blocked=f"link to {a.peer.name} is down: {down[a.peer.name]}"
                if a.peer.name in down
                else "",
            )
            for a in rep.adjacencies
        )
        if why_not or failed:
            ports = tuple(dataclasses.replace(w, blocked=why_not, failed=failed) for w in ports)
        # a member relays only the pairs its origin asked it to (domain/relay.py)
        forward = frozenset((a, b) for a, b in rep.relays or [])
        networks.append(NetworkWant(owners.replica(rep.id).key, local, ports, forward))
    return networks
