"""Flushes phase of a reconciler pass: when the path between members of a network changes,
the MACs our tunnel ports learned (and those of the members on that path) point the old way
until they age out; forget them."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import select

from intercloud.domain import owners
from intercloud.errors import PeerError
from intercloud.federation import answers
from intercloud.federation.peers import Federation, PeerRef
from intercloud.reconciler import dataplane
from intercloud.reconciler.dataplane import Built
from intercloud.reconciler.memory import Memory
from intercloud.reconciler.parts import Parts, PassResult
from intercloud.reconciler.relays import Routed
from intercloud.store import Store
from intercloud.store import models as m

log = logging.getLogger("intercloud.mesh")


def on_link_change(parts: Parts, memory: Memory, changed: set[str]) -> None:
    """A member whose link to a network's origin went down or came back: the origin now
    reaches us another way (or directly again), so what our ports learned is stale."""
    if not changed:
        return
    with parts.store.session() as s:
        for rep in s.scalars(select(m.Replica)):
            if rep.peer.name in changed:
                memory.flush_requests.add(rep.id)


def phase(
    parts: Parts,
    memory: Memory,
    result: PassResult,
    routed: Routed,
    built: Built,
    down: dict[str, str],
) -> None:
    """Once our data plane follows the paths of this pass: flush where they changed, and
    the replicas we were asked to flush."""
    requested = [owners.replica(rid).key for rid in memory.flush_requests]
    memory.flush_requests.clear()
    on_new_paths(parts, memory, result, routed, built, down, requested)


def on_new_paths(
    parts: Parts,
    memory: Memory,
    result: PassResult,
    routed: Routed,
    built: Built,
    down: dict[str, str],
    requested: Iterable[str],
) -> None:
    """The origin, once its data plane follows new paths (or a tunnel port of ours went down
    or came back because another member relays): forget what our own ports of that network
    learned (and of the `requested` networks' keys: all in one go), then ask the members on
    a changed path (its ends and relays) to do the same. A member we cannot reach does it
    itself when its link to us comes back."""
    for gone in set(memory.paths_applied) - set(routed.plans):
        del memory.paths_applied[gone]
        memory.flush_pending.pop(gone, None)
    keys = list(requested)  # the caller's list stays as it gave it
    cut: dict[int, frozenset] = {}
    for b in routed.rerouted.values():
        cut[b.expansion_id] = cut.get(b.expansion_id, frozenset()) | {(b.peer, b.via)}
    for exp_id, plan in routed.plans.items():
        now = (plan.paths, cut.get(exp_id, frozenset()))
        before = memory.paths_applied.get(exp_id)
        memory.paths_applied[exp_id] = now
        if before is None or before == now:
            continue
        names = _on_changed_paths(before, now)
        names.discard(parts.me)
        memory.flush_pending[exp_id] = memory.flush_pending.get(exp_id, set()) | names
        keys.append(owners.expansion(exp_id).key)
    dataplane.flush_networks(parts, built.desired, keys)
    for exp_id, names in list(memory.flush_pending.items()):
        reachable = names - set(down)
        if not reachable or members(
            parts.store, parts.federation, exp_id, reachable, result.peer_errors
        ):
            del memory.flush_pending[exp_id]
        else:
            result.settled = False


def _on_changed_paths(before: tuple[list, frozenset], now: tuple[list, frozenset]) -> set[str]:
    """The members on a path that changed between `before` and `now` ((paths, cut pairs))."""
    old = {tuple(p["between"]): p for p in before[0]}
    names = {name for pair in before[1] ^ now[1] for name in pair}
    for p in now[0]:
        was = old.get(tuple(p["between"]))
        if was is not None and was != p:
            names |= {*p["between"], *p["via"], *was["via"]}
    return names


def members(
    store: Store,
    federation: Federation,
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
            (PeerRef(t.peer.name, t.peer.federation_url, t.peer.key), exp.uid)
            for t in exp.targets
            if t.peer.name in names
        ]
    ok = True
    for peer, uid in calls:
        try:
            federation.peer(peer).flush(uid)
        except PeerError as exc:
            why = answers.failed(errors, exc)
            log.info("expansion %s: cannot ask %s to flush learned MACs: %s", uid, peer.name, why)
            ok = False
    return ok
