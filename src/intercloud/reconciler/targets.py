"""Peers phase of a reconciler pass, at the origin of expanded networks: each target's replica
held by its peer with a VNI agreed by both sides (and the network's addressing told), or the
replica removed there once the expansion is deleted."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Container
from dataclasses import dataclass

from intercloud.domain import owners, text
from intercloud.domain.validation import VNI_MAX, VNI_MIN
from intercloud.errors import Conflict, IntercloudError, PeerError
from intercloud.federation import answers
from intercloud.federation.peers import Federation, PeerClient, PeerRef
from intercloud.reconciler import addressing, confirms
from intercloud.reconciler.memory import Memory
from intercloud.reconciler.parts import Parts, PassResult
from intercloud.service import allocations
from intercloud.store import Store
from intercloud.store import models as m
from intercloud.store.rows import ExpansionRows

# calls to peers that agree a replica (a new target, or a re-check) in one pass: each takes
# ~0.1 s, so 10,000 new expansions in one pass held it for 22 minutes, in which no link
# was checked and no drift repaired; 200 keep a pass under half a minute
AGREEMENTS_PER_PASS = 200

log = logging.getLogger("intercloud.sync")


@dataclass(frozen=True)
class TargetWork:
    target_id: int
    expansion_uid: str
    project: str
    network: str
    cidr: str
    requested_vni: int | None
    vni: int | None
    deleting: bool
    peer: PeerRef
    status: str = "pending"
    members: tuple[str, ...] = ()  # every cloud the network spans, the origin included
    members_sent: tuple[str, ...] | None = None
    pool: tuple[tuple[str, str], ...] | None = None  # the peer's slice of our pool (OpenStack)
    addressing_sent: dict | None = None
    addressing: dict | None = None  # what to tell the peer now (set by the reconciler)

    def peer_told(self) -> bool:
        """The peer was told the members and the addressing as they are now."""
        return self.members_sent == self.members and self.addressing in (
            None,
            self.addressing_sent,
        )


def set_status(store: Store, target_id: int, status: str, reason: str) -> None:
    reason = text.clean(reason)  # may quote a peer: one line that fits the column
    with store.session() as s:
        t = s.get(m.Target, target_id)
        if t is not None and (t.status, t.reason) != (status, reason):
            t.status, t.reason = status, reason
            exp_uid = t.expansion.uid
            log.info(
                "expansion %s peer %s: %s%s",
                exp_uid,
                t.peer.name,
                status,
                f" ({reason})" if reason else "",
            )


def pending_work(rows: ExpansionRows, origin: str) -> list[TargetWork]:
    """Every target (by id) with what its peer is to hold."""
    out = []
    for e in rows.all():
        members = tuple(sorted({origin} | {t.peer for t in e.targets}))
        for t in e.targets:
            out.append(
                TargetWork(
                    t.id,
                    e.uid,
                    e.project,
                    e.network,
                    e.cidr,
                    e.requested_vni,
                    t.vni,
                    e.deleting,
                    PeerRef(t.peer, t.peer_url, t.peer_key),
                    t.status,
                    members,
                    tuple(t.members_sent) if t.members_sent is not None else None,
                    tuple((a, b) for a, b in t.pool) if t.pool is not None else None,
                    t.addressing_sent,
                )
            )
    return sorted(out, key=lambda w: w.target_id)


def remove_target(
    store: Store, federation: Federation, w: TargetWork, errors: list[str] | None = None
) -> bool:
    """Ask the peer to drop its replica, then forget the target. True when done."""
    try:
        federation.peer(w.peer).delete_replica(w.expansion_uid)
    except PeerError as exc:
        if exc.status != 404:
            set_status(store, w.target_id, "deleting", f"retrying: {answers.failed(errors, exc)}")
            return False
    with store.session() as s:
        t = s.get(m.Target, w.target_id)
        if t is not None:
            allocations.release(s, owners.target(t.id))
            exp = t.expansion
            s.delete(t)
            s.flush()
            if not exp.targets:
                log.info("expansion %s: deleted", exp.uid)
                s.delete(exp)
    return True


def _record_replica(store: Store, w: TargetWork) -> None:
    """Remember that the peer knows the members (and how the network is addressed). Whom it
    reaches directly comes only from its own reports, in the order it sends them: the replica
    view in this answer may predate a report that reached us meanwhile (seen in CI: the
    origin then relayed a pair that talks directly until the next refresh)."""
    with store.session() as s:
        t = s.get(m.Target, w.target_id)
        if t is not None:
            t.members_sent = list(w.members)
            if w.addressing is not None:
                t.addressing_sent = w.addressing


def agree(
    store: Store,
    federation: Federation,
    w: TargetWork,
    vnis: tuple[int, int] = (VNI_MIN, VNI_MAX),
    errors: list[str] | None = None,
) -> answers.ReplicaView | None:
    """Make sure the peer holds a replica and both sides hold the same VNI, one in `vnis`
    (our range). Returns the peer's replica view, or None after recording an error."""
    peer = federation.peer(w.peer)
    try:
        replica = peer.put_replica(
            w.expansion_uid, w.project, w.network, w.cidr, w.members, w.addressing
        )
        if not w.peer_told():
            _record_replica(store, w)  # a re-check that changed nothing writes nothing
        if w.vni is not None and replica.vni == w.vni:
            return replica
        vni = _agree_vni(store, peer, w, vnis, new=replica.vni is None)
        with store.session() as s:
            t = s.get(m.Target, w.target_id)
            if t is None:
                return None
            allocations.take(s, owners.target(t.id), vni)
            t.vni = vni
            log.info("expansion %s peer %s: agreed vni %d", w.expansion_uid, w.peer.name, vni)
        return dataclasses.replace(replica, vni=vni)
    except Conflict:
        set_status(store, w.target_id, "error", "VNI taken locally meanwhile; agreeing again")
    except PeerError as exc:
        set_status(store, w.target_id, "error", answers.failed(errors, exc))
    return None


def _agree_vni(
    store: Store, peer: PeerClient, w: TargetWork, vnis: tuple[int, int], new: bool
) -> int:
    """The VNI the peer agrees for a replica. A new one (no VNI there yet, none asked for) is
    chosen in an offer (allocations.offer: a part of our range, with the few VNIs in use in
    it), and in the whole range with every VNI in use here only if the peer has none free in
    that part; a replica that holds a VNI already is offered the whole range, so that the
    peer keeps its VNI if it is free here."""
    owner = owners.target(w.target_id)
    if new and w.requested_vni is None:
        try:
            with store.session() as s:
                start, top, used = allocations.offer(s, owner, *vnis)
            return peer.agree_vni(w.expansion_uid, None, used, (start, top))
        except Conflict:
            pass  # none free here: the peer's answer below says so, as it always did
        except PeerError as exc:
            if exc.status != 409 or (start, top) == vnis:
                raise
    with store.session() as s:
        used = allocations.used_by_others(s, owner)
    return peer.agree_vni(w.expansion_uid, w.requested_vni, used, vnis)


def phase(
    parts: Parts,
    memory: Memory,
    result: PassResult,
    down: dict[str, str],
    rerouted_last_pass: Container[int],
) -> dict[int, answers.ReplicaView]:
    """Returns the peer's view of each live target's replica (by target id). Peers whose
    link is down are not called: their targets say why and wait, or, reached through another
    member, say that (the relays phase; it runs after this one, so what it said in the last
    pass is what holds here)."""
    replicas: dict[int, answers.ReplicaView] = {}
    now = parts.clock()
    works = pending_work(parts.rows, parts.me)
    memory.choose_confirms((w.target_id for w in works), now)
    calls = _Budget(AGREEMENTS_PER_PASS)
    # round robin: from the first target the last pass had no budget left for, so that
    # targets that keep failing cannot starve the others
    first = next((i for i, w in enumerate(works) if w.target_id >= memory.agree_from), 0)
    works = works[first:] + works[:first]
    for gone in set(memory.confirmed_at) - {w.target_id for w in works}:
        del memory.confirmed_at[gone]
    due: list[TargetWork] = []  # re-checks of agreed replicas, one call per peer
    for work in works:
        if work.peer.name in down:  # the pass after the link is back (links.back) goes on
            _wait_for_link(parts.store, work, down, rerouted_last_pass)
        elif work.deleting:
            _remove(parts, result, work)
        else:
            replica = _keep(parts, memory, result, work, now, calls, due)
            if replica is not None:
                replicas[work.target_id] = replica
    if due:
        confirmed = confirms.send(parts.federation, memory, due, now, result.peer_errors)
        replicas.update(confirmed.views)
        for work in confirmed.one_by_one:
            replica = _agree_within(parts, memory, result, work, now, calls)
            if replica is not None:
                replicas[work.target_id] = replica
    memory.agree_from = calls.first_refused or 0  # the next pass starts there (ids are > 0)
    return replicas


def _wait_for_link(
    store: Store, work: TargetWork, down: dict[str, str], rerouted: Container[int]
) -> None:
    why = f"link to {work.peer.name} is down: {down[work.peer.name]}"
    if work.deleting:
        set_status(store, work.target_id, "deleting", f"waiting: {why}")
    elif work.target_id not in rerouted:
        set_status(store, work.target_id, "error", why)


def _remove(parts: Parts, result: PassResult, work: TargetWork) -> None:
    if not remove_target(parts.store, parts.federation, work, result.peer_errors):
        result.settled = False
        return
    try:
        addressing.give_back(parts.cloud, work)
    except IntercloudError as exc:
        result.errors.append(f"expansion {work.expansion_uid}: {exc.message}")


@dataclass
class _Budget:
    """Calls to peers a pass may still make, and the first target refused one."""

    left: int
    first_refused: int | None = None

    def take(self, target_id: int) -> bool:
        if self.left > 0:
            self.left -= 1
            return True
        if self.first_refused is None:
            self.first_refused = target_id
        return False


def _keep(
    parts: Parts,
    memory: Memory,
    result: PassResult,
    work: TargetWork,
    now: float,
    calls: _Budget,
    due: list[TargetWork],
) -> answers.ReplicaView | None:
    """The replica of a live target, agreed with its peer; or None with the target in `due`
    when it is agreed and its re-check is due (confirms.py)."""
    try:
        told = addressing.for_target(parts.store, parts.cloud, work)
    except IntercloudError as exc:
        set_status(parts.store, work.target_id, "error", exc.message)
        result.settled = False
        return None
    if told is not None:  # a copy only then: ~10 µs each, 0.1 s a pass at 10,000 standalone
        work = dataclasses.replace(work, addressing=told)
    agreed = work.vni is not None and work.peer_told()
    if agreed and work.status == "active":
        # Agreed and built on both sides: the peer is asked again only when due, so a pass
        # costs no call per expansion (1,000 expansions, 1,000 calls).
        if not memory.confirm_due(work.target_id):
            return answers.ReplicaView("active", work.vni)
        if confirms.batched(memory, work.peer.name, now):
            due.append(work)
            return None
    elif (
        agreed
        and work.status in ("pending", "error")
        and confirms.batched(memory, work.peer.name, now)
    ):
        # Agreed, waiting for the peer to build its side or in error (the peer's tunnel went
        # silent while we restarted): asked every pass, in the same one call per peer (10,000
        # new expansions: 100 calls, not 10,000 PUTs in 200 a pass; after a restart at 3,000,
        # 260 PUTs in 20 s). One the peer does not confirm with its VNI goes its own PUT.
        due.append(work)
        return None
    return _agree_within(parts, memory, result, work, now, calls)


def _agree_within(
    parts: Parts,
    memory: Memory,
    result: PassResult,
    work: TargetWork,
    now: float,
    calls: _Budget,
) -> answers.ReplicaView | None:
    """`agree` if this pass's budget of calls allows it."""
    if not calls.take(work.target_id):  # left for the next pass, which comes soon (not settled)
        result.settled = False
        return None
    replica = agree(parts.store, parts.federation, work, parts.vnis, result.peer_errors)
    if replica is None:
        result.settled = False
    else:
        memory.confirmed_at[work.target_id] = now
    return replica
