"""Mesh half of a reconciler pass, on a member (not the origin) of a network: keep a direct
tunnel (an Adjacency) to every other member we have a link with, agree its VNI (the lower
name asks, the higher one answers), and tell the origin which members we reach directly so
it stops relaying between us (domain/relay.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from intercloud.domain.validation import VNI_MAX, VNI_MIN
from intercloud.errors import Conflict, PeerError
from intercloud.federation import answers
from intercloud.federation.client import FederationClient
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
    peer: str
    url: str
    key: str
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
                    p = adj.peer
                    work.append(
                        AdjacencyWork(
                            adj.id, rep.uid, rep.peer.name, p.name, p.federation_url, p.key, adj.vni
                        )
                    )
    return work


def agree(
    store: Store,
    client: FederationClient,
    w: AdjacencyWork,
    vnis: tuple[int, int] = (VNI_MIN, VNI_MAX),
    errors: list[str] | None = None,
) -> bool:
    """Ask the other member for the VNI of our direct tunnel (one in `vnis`, our range);
    True when agreed."""
    owner = f"a:{w.adjacency_id}"
    with store.session() as s:
        used = allocations.used_by_others(s, owner)
    try:
        answer = client.call(
            w.peer,
            w.url,
            w.key,
            "PUT",
            f"/v1/federation/adjacencies/{w.uid}",
            {"origin": w.origin, "exclude": used, "vni_min": vnis[0], "vni_max": vnis[1]},
        )
        vni = answers.adjacency(w.peer, answer, *vnis, used)
    except PeerError as exc:
        why = answers.failed(errors, exc)
        log.info("replica %s: direct tunnel to %s not agreed: %s", w.uid, w.peer, why)
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
            "replica %s: vni %d for %s taken here meanwhile; agreeing again", w.uid, vni, w.peer
        )
        return False
    log.info("replica %s: direct tunnel to %s agreed on vni %d", w.uid, w.peer, vni)
    return True


@dataclass(frozen=True)
class DirectReport:
    replica_id: int
    uid: str
    origin: str
    url: str
    key: str
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
                p = rep.peer
                out.append(
                    DirectReport(rep.id, rep.uid, p.name, p.federation_url, p.key, tuple(direct))
                )
    return out


def report(
    store: Store, client: FederationClient, r: DirectReport, errors: list[str] | None = None
) -> bool:
    try:
        answer = client.call(
            r.origin,
            r.url,
            r.key,
            "PUT",
            f"/v1/federation/expansions/{r.uid}/direct",
            {"direct": list(r.direct)},
        )
        answers.direct(r.origin, answer, r.direct)  # what we told it, no one else
    except PeerError as exc:
        why = answers.failed(errors, exc)
        log.info("replica %s: cannot tell %s whom we reach directly: %s", r.uid, r.origin, why)
        return False
    with store.session() as s:
        rep = s.get(m.Replica, r.replica_id)
        if rep is not None:
            rep.direct_sent = list(r.direct)
    log.info("replica %s: told %s we reach directly: %s", r.uid, r.origin, list(r.direct) or "-")
    return True


def flush_members(
    store: Store,
    client: FederationClient,
    expansion_id: int,
    names: set[str],
    errors: list[str] | None = None,
) -> bool:
    """At the origin, once it stopped relaying between members that now talk directly: ask
    them to forget the MACs they learned through us, or they would keep sending that traffic
    our way, where it is now dropped, until those entries age out."""
    with store.session() as s:
        exp = s.get(m.Expansion, expansion_id)
        if exp is None:
            return True
        calls = [
            (t.peer.name, t.peer.federation_url, t.peer.key, exp.uid)
            for t in exp.targets
            if t.peer.name in names
        ]
    ok = True
    for name, url, key, uid in calls:
        try:
            answer = client.call(name, url, key, "POST", f"/v1/federation/replicas/{uid}/flush", {})
            answers.accepted(name, answer, "flush")
        except PeerError as exc:
            why = answers.failed(errors, exc)
            log.info("expansion %s: cannot ask %s to flush learned MACs: %s", uid, name, why)
            ok = False
    return ok
