"""The origin's re-checks of agreed replicas (active ones when due, pending ones every pass
until the peer has built its side), one call per peer: POST
/v1/federation/confirmations carries what PUT /replicas/{uid} would, for up to
MAX_CONFIRMATIONS replicas. One call each was ~10 ms, 100 per pass: most of a converged
pass at 1,000 expansions. A replica the peer did not confirm as agreed (another VNI, refused,
left out), and every replica of a peer whose agent has no such call, goes the old way, one
PUT each: that call's answer is what says what is wrong."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from intercloud.domain.validation import MAX_CONFIRMATIONS
from intercloud.errors import PeerError
from intercloud.federation import answers
from intercloud.federation.peers import Federation, replica_body
from intercloud.reconciler import at_once
from intercloud.reconciler.memory import PEER_REFRESH, Memory

if TYPE_CHECKING:
    from intercloud.reconciler.targets import TargetWork

log = logging.getLogger("intercloud.sync")

Answered = tuple[dict[str, answers.ReplicaView | None], PeerError | None]


@dataclass
class Confirmed:
    views: dict[int, answers.ReplicaView] = field(default_factory=dict)  # by target id
    one_by_one: list[TargetWork] = field(default_factory=list)  # not confirmed: a PUT each


def batched(memory: Memory, peer: str, now: float) -> bool:
    """Whether re-checks with `peer` go in one call (not for PEER_REFRESH after its last one
    failed: an agent without the call, or a peer in trouble)."""
    failed = memory.unbatched.get(peer)
    return failed is None or now - failed >= PEER_REFRESH


def send(
    federation: Federation,
    memory: Memory,
    works: list[TargetWork],
    now: float,
    errors: list[str] | None = None,
) -> Confirmed:
    """One call per peer (of at most MAX_CONFIRMATIONS replicas each) for `works`, the peers
    asked at the same time (the pass waits for the slowest peer, not for all in turn); a
    peer's bad answer is added to `errors` (the pass's peer errors)."""
    out = Confirmed()
    by_peer: dict[str, list[TargetWork]] = {}
    for w in works:
        by_peer.setdefault(w.peer.name, []).append(w)

    def ask(group: list[TargetWork]) -> list[tuple[list[TargetWork], Answered]]:
        return [
            (chunk, _call(federation, chunk))
            for chunk in (
                group[start : start + MAX_CONFIRMATIONS]
                for start in range(0, len(group), MAX_CONFIRMATIONS)
            )
        ]

    answered = [item for items in at_once.each(ask, list(by_peer.values())) for item in items]
    for chunk, (views, failure) in answered:
        if failure is not None:
            _failed(memory, chunk[0].peer.name, failure, now, errors)
        for w in chunk:
            view = views.get(w.expansion_uid)
            if view is not None and w.vni is not None and view.vni == w.vni:
                out.views[w.target_id] = view
                memory.confirmed_at[w.target_id] = now
            else:
                out.one_by_one.append(w)
    return out


def _call(federation: Federation, chunk: list[TargetWork]) -> Answered:
    """The peer's answer for `chunk` (all of one peer), or why there is none. Runs in a
    thread of its own: it touches nothing but the call."""
    bodies = {
        w.expansion_uid: replica_body(w.project, w.network, w.cidr, w.members, w.addressing)
        for w in chunk
    }
    try:
        return federation.peer(chunk[0].peer).confirm_replicas(bodies), None
    except PeerError as exc:
        return {}, exc


def _failed(
    memory: Memory, peer: str, exc: PeerError, now: float, errors: list[str] | None
) -> None:
    """Each one of the call goes its own way, whose answer says what is wrong."""
    memory.unbatched[peer] = now
    if isinstance(exc, answers.BadAnswer) and errors is not None:
        errors.append(exc.message)
    log.info("confirmations with %s: %s (one call each for now)", peer, exc.message)
