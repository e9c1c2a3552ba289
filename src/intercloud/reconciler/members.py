"""Members phase of a reconciler pass, on a member (not the origin) of a network: keep a
direct tunnel (an Adjacency) to every other member we have a link with, agree its VNI (the
lower name asks, the higher one answers), and, once the data plane is built, tell the origin
which members we reach directly so it stops relaying between us (domain/relay.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from intercloud.domain import owners
from intercloud.domain.validation import VNI_MAX, VNI_MIN
from intercloud.errors import Conflict, PeerError
from intercloud.federation import answers
from intercloud.federation.peers import Federation, PeerRef
from intercloud.reconciler.parts import Parts, PassResult
from intercloud.service import adjacencies, allocations
from intercloud.store import Store
from intercloud.store import models as m

log = logging.getLogger("intercloud.mesh")
# one query for all replicas' adjacencies, not one per replica (1,000 replicas, every pass)
REPLICAS_WITH_ADJACENCIES = select(m.Replica).options(selectinload(m.Replica.adjacencies))


@dataclass(frozen=True)
class AdjacencyWork:
    adjacency_id: int
    uid: str
    origin: str  # the network's origin: uids are unique per origin only
    peer: PeerRef  # the other member
    vni: int | None


def plan_adjacencies(store: Store, me: str) -> list[AdjacencyWork]:
    """Create and drop Adjacency rows to match each replica's members and our links; return
    the ones we must agree a VNI for (we are the lower name)."""
    work: list[AdjacencyWork] = []
    with store.session() as s:
        peers = {p.name: p for p in s.scalars(select(m.Peer)) if p.link is not None}
        for rep in s.scalars(REPLICAS_WITH_ADJACENCIES):
            if len(rep.members or []) <= 2 and not rep.adjacencies:
                continue  # origin and us: nobody else to reach directly
            wanted = {
                name
                for name in rep.members or []
                if name not in (me, rep.peer.name) and name in peers
            }
            for adj in list(rep.adjacencies):
                if adj.peer.name not in wanted:
                    log.info("replica %s: no direct tunnel to %s any more", rep.uid, adj.peer.name)
                    adjacencies.drop_adjacency(s, rep, adj)
            have = {a.peer.name for a in rep.adjacencies}
            for name in sorted(wanted - have):
                rep.adjacencies.append(m.Adjacency(peer=peers[name]))
            s.flush()
            for adj in rep.adjacencies:
                if me < adj.peer.name:
                    p = PeerRef(adj.peer.name, adj.peer.federation_url, adj.peer.key)
                    work.append(AdjacencyWork(adj.id, rep.uid, rep.peer.name, p, adj.vni))
    return work


def agree(
    store: Store,
    federation: Federation,
    w: AdjacencyWork,
    vnis: tuple[int, int] = (VNI_MIN, VNI_MAX),
    errors: list[str] | None = None,
) -> bool:
    """Ask the other member for the VNI of our direct tunnel (one in `vnis`, our range);
    True when agreed."""
    owner = owners.adjacency(w.adjacency_id)
    with store.session() as s:
        used = allocations.used_by_others(s, owner)
    try:
        vni = federation.peer(w.peer).agree_adjacency(w.uid, w.origin, used, vnis)
    except PeerError as exc:
        why = answers.failed(errors, exc)
        log.info("replica %s: direct tunnel to %s not agreed: %s", w.uid, w.peer.name, why)
        return False
    if vni == w.vni:
        return True
    try:
        with store.session() as s:
            adj = s.get(m.Adjacency, w.adjacency_id)
            if adj is None:
                return False
            allocations.take(s, owner, vni)
            adj.vni = vni
    except Conflict:  # taken here meanwhile (Store turns the IntegrityError into a Conflict)
        log.info(
            "replica %s: vni %d for %s taken here meanwhile; agreeing again",
            w.uid,
            vni,
            w.peer.name,
        )
        return False
    log.info("replica %s: direct tunnel to %s agreed on vni %d", w.uid, w.peer.name, vni)
    return True


@dataclass(frozen=True)
class DirectReport:
    replica_id: int
    uid: str
    origin: PeerRef
    direct: tuple[str, ...]


def reports_due(store: Store, realized: dict[int, list[str]]) -> list[DirectReport]:
    """Replicas whose directly reached members differ from what we last told the origin."""
    out = []
    with store.session() as s:
        for rep in s.scalars(select(m.Replica)):
            direct = sorted(realized.get(rep.id, []))
            if rep.direct_sent is None and not direct:
                continue  # nothing to say yet: the origin assumes no direct tunnel
            if rep.direct_sent is None or sorted(rep.direct_sent) != direct:
                p = PeerRef(rep.peer.name, rep.peer.federation_url, rep.peer.key)
                out.append(DirectReport(rep.id, rep.uid, p, tuple(direct)))
    return out


def report(
    store: Store, federation: Federation, r: DirectReport, errors: list[str] | None = None
) -> bool:
    try:
        federation.peer(r.origin).report_direct(r.uid, r.direct)  # it names them, no one else
    except PeerError as exc:
        why = answers.failed(errors, exc)
        log.info("replica %s: cannot tell %s whom we reach directly: %s", r.uid, r.origin.name, why)
        return False
    with store.session() as s:
        rep = s.get(m.Replica, r.replica_id)
        if rep is not None:
            rep.direct_sent = list(r.direct)
    log.info(
        "replica %s: told %s we reach directly: %s", r.uid, r.origin.name, list(r.direct) or "-"
    )
    return True


def phase(parts: Parts, result: PassResult, down: dict[str, str], refresh: bool) -> None:
    """Direct tunnels between members of a network (not needed at its origin); their agreed
    VNIs are re-confirmed as often as the targets' (`refresh`)."""
    for work in plan_adjacencies(parts.store, parts.me):
        if work.peer.name in down or (work.vni is not None and not refresh):
            continue
        if not agree(parts.store, parts.federation, work, parts.vnis, result.peer_errors):
            result.settled = False


def report_phase(
    parts: Parts, result: PassResult, down: dict[str, str], realized: dict[int, list[str]]
) -> None:
    """Tell each origin the members our built direct tunnels reach (`realized`, by replica)."""
    for due in reports_due(parts.store, realized):
        if due.origin.name in down:  # told by the pass after the link is back (links.back)
            continue
        if not report(parts.store, parts.federation, due, result.peer_errors):
            result.settled = False
