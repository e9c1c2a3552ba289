"""User use cases: a project's networks and its expansions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intercloud.domain import validation as v
from intercloud.domain import vni as vnis
from intercloud.errors import Conflict, Invalid, NotFound
from intercloud.service import views
from intercloud.service.admin import allows, rate
from intercloud.store import models as m
from intercloud.store.loads import EXPANSION_VIEWS


class NetworkInfo(Protocol):
    """A project's local network as the cloud driver tells it (drivers/cloud/base.Network)."""

    @property
    def name(self) -> str: ...

    @property
    def project(self) -> str: ...

    @property
    def cidr(self) -> str: ...


class ProjectNetworks(Protocol):
    """What the use cases ask of the cloud driver: the networks a project may expand."""

    def networks(self, project: str) -> Sequence[NetworkInfo]: ...

    def network(self, project: str, name: str) -> NetworkInfo | None: ...


def list_networks(s: Session, cloud: ProjectNetworks, project: str) -> list[dict[str, Any]]:
    expanded = {
        e.network: e.uid
        for e in s.scalars(select(m.Expansion).where(m.Expansion.project == project))
    }
    return [
        {"name": n.name, "project": n.project, "cidr": n.cidr, "expansion": expanded.get(n.name)}
        for n in cloud.networks(project)
    ]


def _peer_names(value: object) -> list[str]:
    if not isinstance(value, list) or not value:
        raise Invalid("peers: must be a non-empty list of peer names", field="peers")
    names = [v.name(p, "peers") for p in value]
    if len(set(names)) != len(names):
        raise Invalid("peers: lists a peer twice", field="peers")
    return sorted(names)


def create_expansion(
    s: Session,
    cloud: ProjectNetworks,
    project: str,
    network: str,
    peers: list[str],
    vni: int | None,
    rate_mbit: float | None = None,
    vni_range: tuple[int, int] = (v.VNI_MIN, v.VNI_MAX),
) -> tuple[dict[str, Any], bool]:
    """Returns (expansion, created). The same request twice returns the first expansion.
    A requested `vni` must lie in this agent's `vni_range` ([dataplane] vni_min-vni_max)."""
    v.name(network, "network")
    names = _peer_names(peers)
    if vni is not None:
        v.vni(vni, "vni", *vni_range)
    rate_mbit = rate(rate_mbit, "rate_mbit")
    net = cloud.network(project, network)
    if net is None:
        raise NotFound(f"network: no network {network!r} in project {project!r}", field="network")
    existing = s.scalar(
        select(m.Expansion).where(m.Expansion.project == project, m.Expansion.network == network)
    )
    if existing is not None:
        same = (
            sorted(t.peer.name for t in existing.targets) == names
            and existing.requested_vni == vni
            and existing.rate_mbit == rate_mbit
            and not existing.deleting
        )
        if same:
            return views.expansion(existing), False
        raise Conflict(
            f"network: {network!r} is already expanded (expansion {existing.uid}) "
            "with other peers; delete it first",
            field="network",
        )
    peer_rows = []
    for name in names:
        peer = s.scalar(select(m.Peer).where(m.Peer.name == name))
        # A peer the project may not use is as invisible as an unknown one.
        if peer is None or peer.agreement is None or not allows(peer.agreement.projects, project):
            raise NotFound(
                f"peers: no peer {name!r} available to project {project!r}", field="peers"
            )
        if peer.link is None:
            raise Conflict(f"peers: no link to peer {name!r} yet", field="peers")
        count = s.scalars(
            select(func.count())
            .select_from(m.Target)
            .join(m.Expansion)
            .where(m.Target.peer_id == peer.id, m.Expansion.project == project)
        ).one()
        if count >= peer.agreement.max_expansions_per_project:
            raise Conflict(
                f"peers: project {project!r} reached its limit of "
                f"{peer.agreement.max_expansions_per_project} expansion(s) to {name!r}",
                field="peers",
            )
        peer_rows.append(peer)
    if vni is not None and s.get(m.VniAllocation, vni) is not None:
        raise vnis.unavailable(vni)  # says neither that it is in use nor by whom
    exp = m.Expansion(
        uid=str(uuid.uuid4()),
        project=project,
        network=network,
        cidr=net.cidr,
        requested_vni=vni,
        rate_mbit=rate_mbit,
    )
    exp.targets = [
        m.Target(peer=p, status="pending", reason="waiting for the reconciler") for p in peer_rows
    ]
    s.add(exp)
    s.flush()
    return views.expansion(exp), True


def get_expansion(s: Session, project: str, uid: str) -> m.Expansion:
    exp = s.scalar(
        select(m.Expansion).where(m.Expansion.uid == uid, m.Expansion.project == project)
    )
    if exp is None:
        raise NotFound(f"id: no expansion {uid!r}", field="id")
    return exp


def list_expansions(s: Session, project: str) -> list[dict[str, Any]]:
    rows = s.scalars(EXPANSION_VIEWS.where(m.Expansion.project == project).order_by(m.Expansion.id))
    return [views.expansion(e) for e in rows]


def delete_expansion(s: Session, project: str, uid: str) -> dict[str, Any]:
    exp = get_expansion(s, project, uid)
    exp.deleting = True
    for t in exp.targets:
        t.status, t.reason = "deleting", "removing both sides"
    s.flush()
    return views.expansion(exp)


def update_expansion(s: Session, project: str, uid: str, body: dict[str, Any]) -> dict[str, Any]:
    exp = get_expansion(s, project, uid)
    if exp.deleting:
        raise Conflict(f"id: expansion {uid!r} is being deleted", field="id")
    if "rate_mbit" in body:
        exp.rate_mbit = rate(body["rate_mbit"], "rate_mbit")
    s.flush()
    return views.expansion(exp)
