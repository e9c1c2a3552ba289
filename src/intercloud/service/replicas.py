"""Federation use cases: the networks this agent hosts for its peers' expansions.

Every call is made by an authenticated peer and scoped to it: a peer never sees another
peer's replicas, and can only act within its agreement."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intercloud.config import AgentSection
from intercloud.domain import owners
from intercloud.domain import validation as v
from intercloud.errors import Conflict, Forbidden, Invalid, NotFound
from intercloud.service import allocations, views
from intercloud.service.admin import allows
from intercloud.store import models as m
from intercloud.store.loads import REPLICA_VIEWS

MAX_REPLICAS_PER_PEER = AgentSection.max_replicas_per_peer


def _uid(value: str) -> str:
    return v.uid(value, "id")  # ASCII, canonical UUID (isalnum took any script)


def get(s: Session, peer: m.Peer, uid: str) -> m.Replica:
    rep = s.scalar(
        select(m.Replica).where(m.Replica.peer_id == peer.id, m.Replica.uid == _uid(uid))
    )
    if rep is None:
        raise NotFound(f"id: no replica {uid!r} for peer {peer.name!r}", field="id")
    return rep


def _replicated_project(s: Session, peer: m.Peer, project: str) -> m.ReplicatedProject:
    rp = s.scalar(
        select(m.ReplicatedProject).where(
            m.ReplicatedProject.peer_id == peer.id, m.ReplicatedProject.origin_name == project
        )
    )
    if rp is None:
        rp = m.ReplicatedProject(
            name=_unambiguous_name(s, peer, project), peer_id=peer.id, origin_name=project
        )
        s.add(rp)
        s.flush()
    return rp


def _unambiguous_name(s: Session, peer: m.Peer, project: str) -> str:
    """`<cloud>.<project>`, unless it could be read as another peer's: names hold dots, so
    peer `A` + project `x.y` and peer `A.x` + project `y` would both be `A.x.y`. Such a name
    is read with the longest peer name (`A.x`): peer `A` may not replicate `x.y` while a peer
    `A.x` exists, and a name already held by another (peer, project) is never shared."""
    name = f"{peer.name}.{project}"
    longer = [name[:i] for i, c in enumerate(name) if c == "." and i > len(peer.name)]
    holder = s.scalar(select(m.Peer.name).where(m.Peer.name.in_(longer))) if longer else None
    taken = s.scalar(select(m.ReplicatedProject.peer_id).where(m.ReplicatedProject.name == name))
    if holder is not None or taken is not None:
        raise Conflict(
            f"project: {project!r} would be replicated here as {name!r}, a name that belongs "
            f"to another peer's project; rename the project",
            field="project",
        )
    return name


def _members(peer: m.Peer, members: list[str] | None) -> list[str] | None:
    if members is None:
        return None
    if not isinstance(members, list) or len(members) > 256:
        raise Invalid("members: must be a list of at most 256 cloud names", field="members")
    names = sorted({v.name(x, "members") for x in members})
    if peer.name not in names:
        raise Invalid(f"members: must include the origin {peer.name!r}", field="members")
    return names


def upsert(
    s: Session,
    peer: m.Peer,
    uid: str,
    project: str,
    network: str,
    cidr: str,
    members: list[str] | None = None,
    addressing: dict | None = None,
    max_replicas: int = MAX_REPLICAS_PER_PEER,
) -> tuple[dict[str, Any], str]:
    """Create the replica, or return it; `members` and `addressing` (when given) replace
    what it had. Returns (view, "created" | "changed" | "same"). A new replica needs room
    under the agreement's per-project limit and under `max_replicas` for the peer."""
    _uid(uid)
    v.name(project, "project")
    v.name(network, "network")
    cidr = v.cidr(cidr, "cidr")
    members = _members(peer, members)
    if addressing is not None:
        addressing = v.addressing(addressing, cidr)
    agreement = peer.agreement
    if agreement is None or not allows(agreement.peer_projects, project):
        raise Forbidden(
            f"project: {project!r} of peer {peer.name!r} may not expand into this "
            "cloud (no agreement for it)",
            field="project",
        )
    existing = s.scalar(select(m.Replica).where(m.Replica.peer_id == peer.id, m.Replica.uid == uid))
    if existing is not None:
        if (existing.project.origin_name, existing.network, existing.cidr) != (
            project,
            network,
            cidr,
        ):
            raise Conflict(
                f"id: replica {uid!r} exists with another project/network/cidr", field="id"
            )
        changed = False
        if members is not None and members != list(existing.members or []):
            existing.members = members
            existing.direct_sent = None  # tell the origin again whom we reach directly
            changed = True
        if addressing is not None and addressing != existing.addressing:
            existing.addressing = addressing
            changed = True
        if changed:
            s.flush()
            return views.replica(existing), "changed"
        return views.replica(existing), "same"
    total = s.scalars(
        select(func.count()).select_from(m.Replica).where(m.Replica.peer_id == peer.id)
    ).one()
    if total >= max_replicas:  # peer_projects ["*"] must not mean unlimited replicas
        raise Conflict(
            f"peer: limit reached: {peer.name!r} has {total} replica(s) here, the most "
            f"one peer may have (max_replicas_per_peer = {max_replicas})",
            field="peer",
        )
    count = s.scalars(
        select(func.count())
        .select_from(m.Replica)
        .join(m.ReplicatedProject)
        .where(m.Replica.peer_id == peer.id, m.ReplicatedProject.origin_name == project)
    ).one()
    if count >= agreement.max_expansions_per_project:
        raise Conflict(
            f"project: limit reached: {project!r} has its limit of "
            f"{agreement.max_expansions_per_project} expansion(s) into this cloud",
            field="project",
        )
    rep = m.Replica(
        uid=uid,
        peer=peer,
        project=_replicated_project(s, peer, project),
        network=network,
        cidr=cidr,
        status="pending",
        reason="waiting for a VNI",
        members=members or [peer.name],
        addressing=addressing,
    )
    s.add(rep)
    s.flush()
    return views.replica(rep), "created"


def agree_vni(
    s: Session,
    peer: m.Peer,
    uid: str,
    requested: int | None,
    exclude: list[int],
    low: int,
    high: int,
) -> dict[str, Any]:
    rep = get(s, peer, uid)
    if requested is not None:
        v.vni(requested, "vni")
    excluded = allocations.excluded(exclude)
    chosen = allocations.agree(s, owners.replica(rep.id), rep.vni, excluded, requested, low, high)
    if chosen != rep.vni:
        rep.vni = chosen
        rep.reason = "building the data plane"
        s.flush()
    return {"vni": chosen}


def delete(s: Session, peer: m.Peer, uid: str) -> None:
    rep = get(s, peer, uid)
    allocations.release(
        s, owners.replica(rep.id), *(owners.adjacency(a.id) for a in rep.adjacencies)
    )
    project = rep.project
    s.delete(rep)
    s.flush()
    # its replicated project goes with its last replica (a peer cannot pile up names here)
    if s.scalar(select(m.Replica.id).where(m.Replica.project_id == project.id).limit(1)) is None:
        s.delete(project)


def list_all(s: Session) -> list[m.Replica]:
    return list(s.scalars(REPLICA_VIEWS.order_by(m.Replica.id)))
