"""IPsec phase of a reconciler pass: one IPsec connection per encrypted, enabled link, and
whether each link's encryption lets traffic pass (Readiness)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from intercloud.drivers.ipsec.base import ConnectionSpec, ConnectionStatus, Ipsec
from intercloud.errors import IntercloudError
from intercloud.reconciler.memory import Memory
from intercloud.reconciler.parts import Clock, Parts, PassResult
from intercloud.service import policies
from intercloud.store import Store
from intercloud.store import models as m

log = logging.getLogger("intercloud.ipsec")
PREFIX = "link-"


@dataclass(frozen=True)
class Readiness:
    """Per peer: whether the link's encryption lets traffic pass (unencrypted: always), and
    why not."""

    ready: bool
    reason: str = ""


def name_for(peer: str) -> str:
    return PREFIX + peer


def spec_for(local_name: str, lk: m.Link) -> ConnectionSpec:
    ike = policies.to_ike(lk.ike_policy)
    esp = policies.to_ipsec(lk.ipsec_policy)
    assert lk.psk is not None
    return ConnectionSpec(
        name=name_for(lk.peer.name),
        local=lk.local_endpoint,
        remote=lk.remote_endpoint,
        local_id=local_name,
        remote_id=lk.peer.name,
        psk=lk.psk,
        ike_version=ike.version,
        ike_proposals=ike.proposals(),
        ike_lifetime=ike.lifetime,
        esp_proposals=esp.proposals(),
        esp_lifetime=esp.lifetime,
        mode=esp.mode,
        # The lower name initiates, so two agents do not race to create duplicate IKE SAs.
        initiator=local_name < lk.peer.name,
        # Behind NAT the peer's own address (learned from its health answer) differs from the
        # one we reach it at: the tunnel traffic is addressed to the former.
        remote_ts=lk.peer_tunnel_endpoint
        if lk.peer_tunnel_endpoint and lk.peer_tunnel_endpoint != lk.remote_endpoint
        else "",
    )


def _children(st: ConnectionStatus) -> list[dict[str, Any]]:
    return [
        {
            "id": c.unique_id,
            "state": c.state,
            "mode": c.mode,
            "encap": c.encap,
            "bytes_in": c.bytes_in,
            "bytes_out": c.bytes_out,
            "packets_in": c.packets_in,
            "packets_out": c.packets_out,
        }
        for c in st.children
    ]


def status_view(backend: str | None, st: ConnectionStatus | None) -> dict[str, Any]:
    if st is None:
        return {"backend": backend, "ike_state": "DOWN", "children": [], "last_error": ""}
    view = {
        "backend": backend,
        "ike_state": st.ike_state,
        "nat_detected": st.nat_detected,
        "last_error": st.last_error,
        "children": _children(st),
    }
    if st.lanes:  # lane 0 is the link itself (above); the further charons sharing its traffic
        view["lanes"] = [
            {
                "lane": k,
                "up": lane.up,
                "ike_state": lane.ike_state,
                "last_error": lane.last_error,
                "children": _children(lane),
            }
            for k, lane in enumerate(st.lanes, start=1)
        ]
    return view


REKEY_GRACE = 15.0  # seconds an ESTABLISHED IKE SA may show no INSTALLED CHILD_SA (a rekey)
# After this pass loaded or initiated a connection, how long it waits for an IKE exchange under
# way (tens of ms when the peer answers): the pass then finds the link ready, and its tunnel
# ports are made now rather than by the next pass (a gateway that just took over: one pass)
SETTLE_WAIT = 0.3
SETTLE_POLL = 0.02


def phase(
    parts: Parts, memory: Memory, result: PassResult, *, settle: bool = False
) -> dict[str, Readiness] | None:
    """Converge IPsec; None when its state cannot be read: without it we cannot tell which
    links may carry traffic, so the data plane is left exactly as it is for this pass.
    `settle`: wait for the exchanges a take-over began, even if this pass changes nothing."""
    try:
        changes, ready, memory.ipsec_backend = converge(
            parts.store, parts.ipsec, parts.me, memory.ipsec_up_at, parts.clock, settle=settle
        )
    except IntercloudError as exc:
        result.failed(f"IPsec: {exc.message}")
        return None
    result.changes += changes
    return ready


def converge(
    store: Store,
    ipsec: Ipsec,
    local_name: str,
    up_since: dict[str, float],
    clock: Clock,
    *,
    settle: bool = False,
) -> tuple[int, dict[str, Readiness], str | None]:
    """Ensure/remove IPsec connections, write each link's IPsec status. `up_since` (peer ->
    when its connection was last seen up) is kept between calls.
    Returns (changes, readiness by peer, backend); raises IntercloudError if IPsec cannot be
    read, in which case the caller leaves the data plane alone for this pass. `settle`: wait
    for exchanges under way even if this pass changed nothing (a take-over initiated them)."""
    asked = _wanted(store, ipsec, local_name)
    ready, wanted = asked.ready, asked.connections
    if ipsec.refusal:
        return 0, ready, None
    backend = ipsec.backend()
    changes = _ensure(ipsec, asked)
    status = ipsec.connections()
    if changes or settle:
        status = _settled(ipsec, status, set(map(name_for, wanted)))
    changes += _remove_unwanted(ipsec, status, wanted)
    with store.session(shown=m.Link.__tablename__) as s:  # links' rows only (api/reads.py)
        for lk in s.scalars(select(m.Link).where(m.Link.encrypted.is_(True))):
            st = status.get(name_for(lk.peer.name)) if lk.peer.name in wanted else None
            view = status_view(backend, st)
            if lk.ipsec_status != view:
                lk.ipsec_status = view
            if lk.peer.name in wanted:
                ready[lk.peer.name] = _readiness(lk.peer.name, st, up_since, clock())
    return changes, ready, backend


def prepare(store: Store, ipsec: Ipsec, local_name: str) -> int:
    """A standby gateway's share: the connections loaded (never initiated, nothing written),
    so that a take-over initiates IKE with every peer at once instead of after its first
    pass has loaded them. Returns the number of changes."""
    wanted = _wanted(store, ipsec, local_name)
    if ipsec.refusal:
        return 0
    changes = _ensure(ipsec, wanted, initiate=False)
    return changes + _remove_unwanted(ipsec, ipsec.connections(), wanted.connections)


@dataclass
class Wanted:
    """What the links ask of IPsec: readiness of the links that need no connection, the
    connection of each other, and the tunnel addresses of every encrypted link (enabled or
    not), whose tunnel traffic must never leave in clear."""

    ready: dict[str, Readiness] = field(default_factory=dict)
    connections: dict[str, ConnectionSpec] = field(default_factory=dict)
    guarded: set[str] = field(default_factory=set)


def _wanted(store: Store, ipsec: Ipsec, local_name: str) -> Wanted:
    out = Wanted()
    with store.session() as s:
        for lk in s.scalars(select(m.Link)):
            if not lk.encrypted:
                out.ready[lk.peer.name] = Readiness(True)
                continue
            out.guarded.add(lk.peer_tunnel_endpoint or lk.remote_endpoint)
            if ipsec.refusal:
                out.ready[lk.peer.name] = Readiness(False, ipsec.refusal)
            elif lk.enabled:
                out.connections[lk.peer.name] = spec_for(local_name, lk)
    return out


def _remove_unwanted(
    ipsec: Ipsec, status: dict[str, ConnectionStatus], wanted: dict[str, ConnectionSpec]
) -> int:
    changes = 0
    for name in sorted(status):
        owned = name.startswith(PREFIX) and name[len(PREFIX) :] not in wanted
        if owned and ipsec.remove_connection(name):
            changes += 1
            log.info("IPsec connection %s removed", name)
    return changes


def _settled(
    ipsec: Ipsec, status: dict[str, ConnectionStatus], names: set[str]
) -> dict[str, ConnectionStatus]:
    """`status` once no connection of `names` is CONNECTING (or SETTLE_WAIT has passed)."""
    deadline = time.monotonic() + SETTLE_WAIT
    while any(status[n].ike_state == "CONNECTING" for n in names if n in status):
        if time.monotonic() >= deadline:
            break
        time.sleep(SETTLE_POLL)
        status = ipsec.connections()
    return status


def _ensure(ipsec: Ipsec, wanted: Wanted, *, initiate: bool = True) -> int:
    """The guard first (before any tunnel port of this pass comes up), then the lanes'
    steering, then each connection."""
    changes = 0
    try:
        if ipsec.ensure_guard(wanted.guarded):
            changes += 1
    except IntercloudError as exc:  # encryption still works while charon runs
        log.error("IPsec: cleartext guard failed: %s", exc.message)
    try:
        if ipsec.ensure_steering():
            changes += 1
            log.info("IPsec lanes: steering of tunnel traffic set up")
    except IntercloudError as exc:  # the links still work, on lane 0
        log.error("IPsec lanes: steering failed: %s", exc.message)
    for peer, spec in wanted.connections.items():
        try:
            if ipsec.ensure_connection(spec, initiate=initiate):
                changes += 1
                log.info("link %s: IPsec connection %s loaded", peer, spec.name)
        except IntercloudError as exc:
            log.error("link %s: IPsec connection failed: %s", peer, exc.message)
    return changes


def _readiness(
    peer: str, st: ConnectionStatus | None, up_since: dict[str, float], now: float
) -> Readiness:
    if st is not None and st.up:
        up_since[peer] = now
        return Readiness(True)
    if (
        st is not None
        and st.ike_state == "ESTABLISHED"
        and now - up_since.get(peer, -REKEY_GRACE) < REKEY_GRACE
    ):
        # Mid-rekey the old CHILD_SA may be gone before the new one shows INSTALLED:
        # keep the tunnel port rather than drop traffic for a snapshot.
        return Readiness(True)
    why = st.last_error if st and st.last_error else f"IKE {st.ike_state.lower() if st else 'down'}"
    return Readiness(False, f"IPsec to {peer} not up: {why}")
