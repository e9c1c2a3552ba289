"""Federation use cases: the networks this agent hosts for its peers' expansions.

Every call is made by an authenticated peer and scoped to it: a peer never sees another
peer's replicas, and can only act within its agreement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intercloud.config import AgentSection
from intercloud.domain import owners
from intercloud.domain import validation as v
from intercloud.errors import Conflict, Forbidden, IntercloudError, Invalid, NotFound
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


@dataclass(frozen=True)
class Asked:
    """What an origin asks of one replica (PUT /replicas/{uid}, an item of confirmations),
    validated, and allowed by its agreement."""

    uid: str
    project: str
    network: str
    cidr: str
    members: list[str] | None
    addressing: dict | None


def asked(
    peer: m.Peer,
    uid: str,
    project: str,
    network: str,
    cidr: str,
    members: list[str] | None = None,
    addressing: dict | None = None,
) -> Asked:
    uid, project, network = _uid(uid), v.name(project, "project"), v.name(network, "network")
    cidr = v.cidr(cidr, "cidr")
    out = Asked(
        uid,
        project,
        network,
        cidr,
        _members(peer, members),
        None if addressing is None else v.addressing(addressing, cidr),
    )
    agreement = peer.agreement
    if agreement is None or not allows(agreement.peer_projects, out.project):
        raise Forbidden(
            f"project: {out.project!r} of peer {peer.name!r} may not expand into this "
            "cloud (no agreement for it)",
            field="project",
        )
    return out


def upsert(
    s: Session, peer: m.Peer, a: Asked, max_replicas: int = MAX_REPLICAS_PER_PEER
) -> tuple[dict[str, Any], str]:
    """Create the replica `a` asks for (see `asked`), or return it; its `members` and
    `addressing` (when given) replace what it had. Returns (view, "created" | "changed" |
    "same"). A new replica needs room under the agreement's per-project limit and under
    `max_replicas` for the peer."""
    existing = s.scalar(
        select(m.Replica).where(m.Replica.peer_id == peer.id, m.Replica.uid == a.uid)
    )
    if existing is not None:
        return _kept(s, existing, a)
    return _created(s, peer, a, max_replicas)


def confirm(
    s: Session, peer: m.Peer, items: list[tuple[str, dict[str, Any]]]
) -> list[tuple[dict[str, Any], str] | IntercloudError | None]:
    """`upsert` for many (uid, fields) at once, of the replicas that exist (read in one
    query): for each item in turn, (view, outcome) or the error that upsert would raise; None
    for one not here: the caller makes it with `upsert`, in a session of its own."""
    uids = [uid for uid, _ in items]
    held = {
        r.uid: r
        for r in s.scalars(
            REPLICA_VIEWS.where(m.Replica.peer_id == peer.id, m.Replica.uid.in_(uids))
        )
    }
    out: list[tuple[dict[str, Any], str] | IntercloudError | None] = []
    for uid, fields in items:
        rep = held.get(uid)
        try:
            out.append(None if rep is None else _kept(s, rep, asked(peer, uid, **fields)))
        except IntercloudError as exc:
            out.append(exc)
    return out


def _kept(s: Session, existing: m.Replica, a: Asked) -> tuple[dict[str, Any], str]:
    if (existing.project.origin_name, existing.network, existing.cidr) != (
        a.project,
        a.network,
        a.cidr,
    ):
        raise Conflict(
            f"id: replica {a.uid!r} exists with another project/network/cidr", field="id"
        )
    changed = False
    if a.members is not None and a.members != list(existing.members or []):
        existing.members = a.members
        existing.direct_sent = None  # tell the origin again whom we reach directly
        changed = True
    if a.addressing is not None and a.addressing != existing.addressing:
        existing.addressing = a.addressing
        changed = True
    if changed:
        s.flush()
        return views.replica(existing), "changed"
    return views.replica(existing), "same"


def _created(s: Session, peer: m.Peer, a: Asked, max_replicas: int) -> tuple[dict[str, Any], str]:
    agreement = peer.agreement
    assert agreement is not None  # asked() said so
    project = a.project
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
        uid=a.uid,
        peer=peer,
        project=_replicated_project(s, peer, project),
        network=a.network,
        cidr=a.cidr,
        status="pending",
        reason="waiting for a VNI",
        members=a.members or [peer.name],
        addressing=a.addressing,
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
