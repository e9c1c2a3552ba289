"""Federation half of a reconciler pass: agree replicas and VNIs with peers, remove them."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from intercloud.domain import text
from intercloud.domain.validation import VNI_MAX, VNI_MIN
from intercloud.errors import Conflict, PeerError
from intercloud.federation import answers
from intercloud.federation.client import FederationClient
from intercloud.service import allocations
from intercloud.store import Store
from intercloud.store import models as m

log = logging.getLogger("intercloud.sync")


@dataclass(frozen=True)
class PeerAddr:
    name: str
    url: str
    key: str


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
    peer: PeerAddr
    status: str = "pending"
    members: tuple[str, ...] = ()  # every cloud the network spans, the origin included
    members_sent: tuple[str, ...] | None = None
    pool: tuple[tuple[str, str], ...] | None = None  # the peer's slice of our pool (OpenStack)
    addressing_sent: dict | None = None
    addressing: dict | None = None  # what to tell the peer now (set by the reconciler)


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


def pending_work(store: Store, origin: str) -> list[TargetWork]:
    with store.session() as s:
        # Loaded together: one query per relation, not one per target (1,000 expansions:
        # 4,000 lazy loads, 1.8 s a pass).
        rows = s.scalars(
            select(m.Target)
            .join(m.Expansion)
            .order_by(m.Target.id)
            .options(
                selectinload(m.Target.peer),
                selectinload(m.Target.expansion)
                .selectinload(m.Expansion.targets)
                .selectinload(m.Target.peer),
            )
        )

        def members(e: m.Expansion) -> tuple[str, ...]:
            return tuple(sorted({origin} | {t.peer.name for t in e.targets}))

        return [
            TargetWork(
                t.id,
                t.expansion.uid,
                t.expansion.project,
                t.expansion.network,
                t.expansion.cidr,
                t.expansion.requested_vni,
                t.vni,
                t.expansion.deleting,
                PeerAddr(t.peer.name, t.peer.federation_url, t.peer.key),
                t.status,
                members(t.expansion),
                tuple(t.members_sent) if t.members_sent is not None else None,
                tuple((a, b) for a, b in t.pool) if t.pool is not None else None,
                t.addressing_sent,
            )
            for t in rows
        ]


def remove_target(
    store: Store, client: FederationClient, w: TargetWork, errors: list[str] | None = None
) -> bool:
    """Ask the peer to drop its replica, then forget the target. True when done."""
    path = f"/v1/federation/replicas/{w.expansion_uid}"
    try:
        answer = client.call(w.peer.name, w.peer.url, w.peer.key, "DELETE", path)
        answers.accepted(w.peer.name, answer, "delete")
    except PeerError as exc:
        if exc.status != 404:
            set_status(store, w.target_id, "deleting", f"retrying: {answers.failed(errors, exc)}")
            return False
    with store.session() as s:
        t = s.get(m.Target, w.target_id)
        if t is not None:
            allocations.release(s, f"t:{t.id}")
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
    client: FederationClient,
    w: TargetWork,
    vnis: tuple[int, int] = (VNI_MIN, VNI_MAX),
    errors: list[str] | None = None,
) -> answers.ReplicaView | None:
    """Make sure the peer holds a replica and both sides hold the same VNI, one in `vnis`
    (our range). Returns the peer's replica view, or None after recording an error."""
    path = f"/v1/federation/replicas/{w.expansion_uid}"
    try:
        answer = client.call(
            w.peer.name,
            w.peer.url,
            w.peer.key,
            "PUT",
            path,
            {
                "project": w.project,
                "network": w.network,
                "cidr": w.cidr,
                "members": list(w.members),
                **({"addressing": w.addressing} if w.addressing is not None else {}),
            },
        )
        replica = answers.replica(w.peer.name, answer)
        _record_replica(store, w)
        if w.vni is not None and replica.vni == w.vni:
            return replica
        with store.session() as s:
            used = allocations.used_by_others(s, f"t:{w.target_id}")
        answer = client.call(
            w.peer.name,
            w.peer.url,
            w.peer.key,
            "PUT",
            path + "/vni",
            {"vni": w.requested_vni, "exclude": used, "vni_min": vnis[0], "vni_max": vnis[1]},
        )
        vni = answers.vni(w.peer.name, answer, *vnis, requested=w.requested_vni, exclude=used)
        with store.session() as s:
            t = s.get(m.Target, w.target_id)
            if t is None:
                return None
            allocations.take(s, f"t:{t.id}", vni)
            t.vni = vni
            log.info("expansion %s peer %s: agreed vni %d", w.expansion_uid, w.peer.name, vni)
        return dataclasses.replace(replica, vni=vni)
    except Conflict:
        set_status(store, w.target_id, "error", "VNI taken locally meanwhile; agreeing again")
    except PeerError as exc:
        set_status(store, w.target_id, "error", answers.failed(errors, exc))
    return None
