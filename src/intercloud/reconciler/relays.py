"""Relays phase of a reconciler pass, at the origin (its half of domain/relay.py): from our
links' state and the members' direct-tunnel reports, which member relays which pairs of the
network at layer 2; tell each member its pairs; write the paths into the expansion for its
status; say which targets we reach through another member.

Ordering keeps every broadcast exactly-once while a path moves: our own tunnel to a target is
taken down as soon as another member may relay between us (it confirmed the pairs), and only
rebuilt once that member says it has stopped relaying them in its data plane (`applied`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple

from intercloud.domain import relay
from intercloud.errors import PeerError
from intercloud.federation import answers
from intercloud.federation.peers import Federation, PeerRef
from intercloud.reconciler import targets
from intercloud.reconciler.parts import Parts, PassResult
from intercloud.store import Store
from intercloud.store import models as m
from intercloud.store.rows import ExpansionRows

log = logging.getLogger("intercloud.routes")


@dataclass(frozen=True)
class RelayPush:
    target_id: int
    uid: str
    peer: PeerRef
    relays: tuple[tuple[str, str], ...]
    members: tuple[str, ...]  # the network's, origin included: all an answer may name


def _pairs(rows: list[list[str]] | None) -> set[tuple[str, str]]:
    return {(a, b) for a, b in rows or []}


def plan(
    store: Store, rows: ExpansionRows, me: str, down: dict[str, str]
) -> tuple[dict[int, relay.Routes], list]:
    """Routes per live expansion (by id), and the members to tell their relays."""
    out: dict[int, relay.Routes] = {}
    pushes: list[RelayPush] = []
    new_paths: dict[int, list[dict]] = {}
    # Networks with the same members and edges have the same routes: planned once (a plan is
    # ~20 µs, 0.2 s a pass at 10,000 expansions over a few peers), and shared read-only.
    planned: dict[tuple[tuple[str, ...], frozenset[frozenset[str]]], relay.Routes] = {}
    for exp in rows.live():
        targets = [t for t in exp.targets if t.vni is not None]
        edges = {frozenset((me, t.peer)) for t in targets if t.peer not in down}
        edges |= relay.direct_pairs({t.peer: t.direct or [] for t in targets})
        key = (tuple(t.peer for t in targets), frozenset(edges))
        routes = planned.get(key)
        if routes is None:
            routes = planned[key] = relay.plan(me, key[0], edges)
        out[exp.id] = routes
        if exp.paths != routes.paths:
            new_paths[exp.id] = routes.paths
        for t in targets:
            want = routes.forward.get(t.peer, frozenset())
            if want != _pairs(t.relays_sent) and t.peer not in down:
                members = tuple(sorted({me} | {x.peer for x in exp.targets}))
                ref = PeerRef(t.peer, t.peer_url, t.peer_key)
                pushes.append(RelayPush(t.id, exp.uid, ref, tuple(sorted(want)), members))
    if new_paths:
        with store.session() as s:
            for exp_id, paths in new_paths.items():
                e = s.get(m.Expansion, exp_id)
                if e is not None:
                    e.paths = paths
    return out, pushes


def push(
    store: Store, federation: Federation, w: RelayPush, errors: list[str] | None = None
) -> bool:
    """Tell a member the pairs it relays for us. What we record is what it may be relaying:
    the pairs it now wants and those its data plane still applies. True when both are ours."""
    try:
        answer = federation.peer(w.peer).put_relays(w.uid, w.relays, w.members)
    except PeerError as exc:
        why = answers.failed(errors, exc)
        log.info("expansion %s: cannot tell %s whom to relay: %s", w.uid, w.peer.name, why)
        return False
    wanted, applied = answer.wanted, answer.applied
    with store.session() as s:
        t = s.get(m.Target, w.target_id)
        if t is None:
            return True
        # not applied yet since the peer started: what we knew it relays may still be there
        still = applied if applied is not None else _pairs(t.relays_sent)
        may = sorted(wanted | still)
        if may != sorted(_pairs(t.relays_sent)):
            log.info("expansion %s: %s relays %s", w.uid, w.peer.name,
                     ", ".join(f"{a}>{b}" for a, b in may) or "nothing")  # fmt: skip
        t.relays_sent = [list(p) for p in may] or None
        return set(may) == set(w.relays)


class Blocked(NamedTuple):
    expansion_id: int
    peer: str
    via: str  # the member that relays (or may still relay) us to `peer`


def blocked(
    rows: ExpansionRows, me: str, plans: dict[int, relay.Routes], down: dict[str, str]
) -> dict[int, Blocked]:
    """Our targets our own tunnel must stay down to (target id -> the first relay on our path
    to them): those we reach through other members while our link to them is down, and, while
    some member has not yet applied the relays we asked of it, any target a relay may still be
    forwarding to (or they would get our frames twice: directly and relayed)."""
    out: dict[int, Blocked] = {}
    for exp in rows.live():
        routes = plans.get(exp.id)
        if routes is None:
            continue
        via = {
            str(p["between"][1]): list(p["via"])
            for p in routes.paths
            if p["between"][0] == me and p["state"] == "relayed"
        }
        # who each member not yet as asked may still be relaying to
        in_flux: dict[str, str] = {}
        for t in exp.targets:
            if _pairs(t.relays_sent) != routes.forward.get(t.peer, frozenset()):
                for pair in sorted(_pairs(t.relays_sent)):
                    for name in pair:
                        in_flux.setdefault(name, t.peer)
        for t in exp.targets:
            if t.peer in down and t.peer in via:
                out[t.id] = Blocked(exp.id, t.peer, via[t.peer][0])
            elif t.peer in in_flux:
                out[t.id] = Blocked(exp.id, t.peer, in_flux[t.peer])
    return out


class Routed(NamedTuple):
    plans: dict[int, relay.Routes]  # expansion id -> its routes
    rerouted: dict[int, Blocked]  # target id -> the member relaying us to it


def phase(parts: Parts, result: PassResult, down: dict[str, str]) -> Routed:
    """The origin: choose who relays what (domain/relay.py), tell the members, and say which
    targets we reach through another member while our link to them is down."""
    plans, pushes = plan(parts.store, parts.rows, parts.me, down)
    for work in pushes:
        if not push(parts.store, parts.federation, work, result.peer_errors):
            result.settled = False
    rerouted = blocked(parts.rows, parts.me, plans, down)
    for target_id, b in rerouted.items():
        if b.peer in down:
            why = f"reached through {b.via}: link to {b.peer} is down"
            targets.set_status(parts.store, target_id, "active", why)
    return Routed(plans, rerouted)
