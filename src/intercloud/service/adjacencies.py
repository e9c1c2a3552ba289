"""Federation use cases between the members of a network (domain/relay.py): two members agree
the VNI of their direct tunnel, an adjacency (a member drops its own when the network or the
link no longer calls for it: `drop_adjacency`); a member tells the origin which members it
reaches directly; the origin asks a member to relay between two others.

All are scoped to the calling peer: a member may only ask about a network that names it as a
member and with which we have a link; only a target of an expansion may report for it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from intercloud.domain import owners
from intercloud.domain import validation as v
from intercloud.errors import Conflict, Invalid, NotFound
from intercloud.service import allocations
from intercloud.store import models as m


def _replica_naming(s: Session, peer: m.Peer, origin: str, uid: str, me: str) -> m.Replica:
    """Our replica of `origin`'s network `uid`: uids are unique per origin only, so another
    origin's network of the same uid must never answer for it."""
    v.name(origin, "origin")
    rep = s.scalar(
        select(m.Replica).join(m.Peer).where(m.Peer.name == origin, m.Replica.uid == uid)
    )
    members = set(rep.members or []) if rep is not None else set()
    # Another member's replica is invisible unless the network spans both of us.
    if rep is None or peer.name not in members or me not in members or rep.peer_id == peer.id:
        raise NotFound(
            f"id: no network {uid!r} of {origin!r} shared with peer {peer.name!r}", field="id"
        )
    return rep


def adjacency(s: Session, rep: m.Replica, peer: m.Peer) -> m.Adjacency:
    adj = next((a for a in rep.adjacencies if a.peer_id == peer.id), None)
    if adj is None:
        adj = m.Adjacency(replica=rep, peer=peer)
        s.add(adj)
        s.flush()
    return adj


def agree_adjacency(
    s: Session,
    peer: m.Peer,
    origin: str,
    uid: str,
    me: str,
    exclude: list[int],
    low: int,
    high: int,
) -> dict[str, Any]:
    """The accepting side (the higher name) of a direct tunnel in `origin`'s network `uid`:
    keep our VNI for it unless the caller cannot use it (or it left our vni range), else take
    the lowest free on both within low-high."""
    rep = _replica_naming(s, peer, origin, uid, me)
    if peer.link is None:
        raise Conflict(f"peer: no link to {peer.name!r} in this cloud", field="peer")
    excluded = allocations.excluded(exclude)
    adj = adjacency(s, rep, peer)
    adj.vni = allocations.agree(s, owners.adjacency(adj.id), adj.vni, excluded, None, low, high)
    s.flush()
    return {"vni": adj.vni}


def drop_adjacency(s: Session, rep: m.Replica, adj: m.Adjacency) -> None:
    """Forget a direct tunnel and give its VNI back."""
    allocations.release(s, owners.adjacency(adj.id))
    rep.adjacencies.remove(adj)


def target_of(s: Session, peer: m.Peer, uid: str) -> m.Target:
    """Our expansion `uid`'s target that is `peer` (a peer sees no other expansion)."""
    target = s.scalar(
        select(m.Target)
        .join(m.Expansion)
        .where(m.Expansion.uid == uid, m.Target.peer_id == peer.id)
    )
    if target is None:
        raise NotFound(f"id: no expansion {uid!r} reaching peer {peer.name!r}", field="id")
    return target


def report_direct(s: Session, peer: m.Peer, uid: str, direct: list[str]) -> bool:
    """A target tells the origin which members it reaches directly. Returns whether it
    changed. Names that are not members of the expansion are refused."""
    target = target_of(s, peer, uid)
    if not isinstance(direct, list) or len(direct) > 256:
        raise Invalid("direct: must be a list of cloud names", field="direct")
    members = {t.peer.name for t in target.expansion.targets} - {peer.name}
    names = sorted({v.name(x, "direct") for x in direct})
    strangers = [n for n in names if n not in members]
    if strangers:
        raise Invalid(
            f"direct: {', '.join(strangers)} not a member of expansion {uid!r}", field="direct"
        )
    if names == sorted(target.direct or []):
        return False
    target.direct = names
    return True


def set_relays(s: Session, rep: m.Replica, me: str, relays: list) -> bool:
    """The origin asks us to relay between pairs of the network's members (its own link to
    one of them is down, domain/relay.py). Each pair names two members other than us, in the
    direction the frames go; we forward both ways. Returns whether it changed."""
    if not isinstance(relays, list) or len(relays) > 1024:
        raise Invalid("relays: must be a list of [from, to] pairs of members", field="relays")
    members = set(rep.members or []) - {me}
    pairs: set[tuple[str, str]] = set()
    for pair in relays:
        if not isinstance(pair, list) or len(pair) != 2 or pair[0] == pair[1]:
            raise Invalid("relays: each pair must be [from, to], two different members",
                          field="relays")  # fmt: skip
        a, b = (v.name(x, "relays") for x in pair)
        strangers = [n for n in (a, b) if n not in members]
        if strangers:
            raise Invalid(
                f"relays: {', '.join(strangers)} not a member of network {rep.uid!r} but us",
                field="relays",
            )
        pairs |= {(a, b), (b, a)}
    wanted = [list(p) for p in sorted(pairs)]
    if wanted == (rep.relays or []):
        return False
    rep.relays = wanted
    return True
