"""Status phase of a reconciler pass: each target's and replica's status from what the pass
built here (typed: built, blocked, or the data plane could not be built) and what its peer
says of its side."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from sqlalchemy.orm import Session

from intercloud.domain import naming, owners, text
from intercloud.domain.owners import Owner
from intercloud.domain.probe import Verdict, silence_explained
from intercloud.federation import answers
from intercloud.reconciler.dataplane import Built
from intercloud.reconciler.members import REPLICAS_WITH_ADJACENCIES
from intercloud.reconciler.memory import Memory
from intercloud.reconciler.parts import Clock, Parts, PassResult, TunnelProbes
from intercloud.store import models as m
from intercloud.store.rows import ExpansionRows, TargetRow

log = logging.getLogger("intercloud.reconciler")


class Local(Enum):
    BUILT = "built"
    BLOCKED = "blocked"  # waits for something (a VNI, a link, the cloud): pending
    NOT_BUILT = "not built"  # the data plane could not be built: an error


@dataclass(frozen=True)
class LocalState:
    state: Local
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.state is Local.BUILT


def local_state(built: Built, owner: Owner) -> LocalState:
    """Whether an owner's tunnel port is built here, and why not."""
    desired = built.desired
    if owner in desired.failed:
        return LocalState(Local.NOT_BUILT, desired.failed[owner])
    if owner in desired.blocked:
        return LocalState(Local.BLOCKED, desired.blocked[owner])
    if owner not in desired.needs:  # made after this pass read what to build (a peer's call)
        return LocalState(Local.BLOCKED, "to be built in the next pass")
    missing = desired.needs[owner] & built.broken
    if missing:
        why = "the data plane could not be built: " + ", ".join(sorted(missing))
        return LocalState(Local.NOT_BUILT, why)
    return LocalState(Local.BUILT)


def phase(
    parts: Parts,
    memory: Memory,
    result: PassResult,
    built: Built,
    replicas: dict[int, answers.ReplicaView],
) -> dict[int, list[str]]:
    """Write the statuses. Returns, per replica, the members its direct tunnels reach (built
    and usable)."""
    silent = _Silence(parts.probes, parts.cfg.dataplane.prefix, memory, parts.clock())
    changed = _targets(parts.rows, result, built, replicas, silent)
    with parts.store.session() as s:
        for target_id, (status, reason) in changed.items():
            t = s.get(m.Target, target_id)
            if t is not None:
                t.status, t.reason = status, reason
        return _replicas(s, built, silent)


class _Silence:
    """Why a built tunnel port is black-holed, from its probes: "" if it is not (answering,
    not probed, or never answered; see domain/probe.py), None if its peer's agent is away or
    just back (the status stays as it is: a restart is no black hole)."""

    def __init__(
        self, probes: TunnelProbes, prefix: str, memory: Memory, now: float, wall: Clock = time.time
    ) -> None:
        self.probes, self.prefix, self.wall = probes, prefix, wall
        # since when each peer's link is down, or came back (the links phase's record), in the
        # pass's clock `now`
        self.down_since, self.back_at, self.now = memory.down_since, memory.back_at, now

    def _for(self, since: dict[str, float], peer: str) -> float | None:
        at = since.get(peer)
        return None if at is None else self.now - at

    def __call__(self, vni: int | None, peer: str) -> str | None:
        if vni is None:
            return ""
        port = naming.vxlan(self.prefix, vni)
        if self.probes.verdict(port) is not Verdict.SILENT:
            return ""
        health = self.probes.health(port)
        if health is None or health.last_answer_at is None:
            return ""
        last = health.last_answer_at
        away, back = self._for(self.down_since, peer), self._for(self.back_at, peer)
        if silence_explained(self.wall() - last, away, back, health.period):
            return None
        since = datetime.fromtimestamp(last, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"no frames through the tunnel since {since}"


def _heard(
    black_hole: str | None, said: tuple[str, str], otherwise: tuple[str, str]
) -> tuple[str, str]:
    """(status, reason) with a tunnel's silence (`_Silence`) applied: as `said` while its
    peer's agent is away (None), error when black-holed, else `otherwise`."""
    if black_hole is None:
        return said
    return ("error", black_hole) if black_hole else otherwise


def _targets(
    rows: ExpansionRows,
    result: PassResult,
    built: Built,
    replicas: dict[int, answers.ReplicaView],
    silent: _Silence,
) -> dict[int, tuple[str, str]]:
    """The new (status, reason) of each live target whose status changed."""
    changed = {}
    for e in rows.live():
        for t in e.targets:
            if t.id not in replicas:
                continue  # the peers phase recorded why
            local = local_state(built, owners.target(t.id))
            black_hole = silent(t.vni, t.peer) if local.ok else ""
            status, reason = _heard(
                black_hole, (t.status, t.reason or ""), _target_status(t, local, replicas[t.id])
            )
            if status != "active":
                result.settled = False
            reason = text.clean(reason)
            if (t.status, t.reason) != (status, reason):
                shown = f" ({reason})" if reason else ""
                log.info("expansion %s peer %s: %s%s", e.uid, t.peer, status, shown)
                changed[t.id] = (status, reason)
    return changed


def _target_status(
    t: TargetRow, local: LocalState, peer_side: answers.ReplicaView
) -> tuple[str, str]:
    if not local.ok:
        return ("error" if local.state is Local.NOT_BUILT else "pending"), local.reason
    if peer_side.status == "active":
        return "active", ""
    if peer_side.status == "error":  # its reason was cleaned (answers.replica)
        return "error", f"peer {t.peer}: {peer_side.reason}"
    waiting = f"waiting for peer {t.peer} to build its side"
    return "pending", f"{waiting}: {peer_side.reason}" if peer_side.reason else waiting


def _replicas(s: Session, built: Built, silent: _Silence) -> dict[int, list[str]]:
    realized: dict[int, list[str]] = {}
    for rep in s.scalars(REPLICAS_WITH_ADJACENCIES):
        realized[rep.id] = [
            a.peer.name
            for a in rep.adjacencies
            if a.vni is not None and local_state(built, owners.adjacency(a.id)).ok
        ]
        local = local_state(built, owners.replica(rep.id))
        # waiting (for its VNI, its network in this cloud, the link) is pending, as a target's
        # is: an origin that read "error" there would give up on an expansion being made
        built_here = {Local.BUILT: "active", Local.BLOCKED: "pending"}.get(local.state, "error")
        black_hole = silent(rep.vni, rep.peer.name) if local.ok else ""
        status, reason = _heard(
            black_hole, (rep.status, rep.reason or ""), (built_here, local.reason)
        )
        reason = text.clean(reason)
        if (rep.status, rep.reason) != (status, reason):
            shown = f" ({reason})" if reason else ""
            log.info("replica %s of peer %s: %s%s", rep.uid, rep.peer.name, status, shown)
            rep.status, rep.reason = status, reason
    return realized
