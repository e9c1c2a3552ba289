"""JSON views of stored objects. Secrets (peer keys) never appear here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from intercloud import tls
from intercloud.domain import naming, owners
from intercloud.domain.probe import PeerProbes, TunnelHealth
from intercloud.service import budget
from intercloud.store import models as m


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


Probed = Callable[[str], TunnelHealth | None]  # tunnel port -> what its probes say


def tunnel(health: TunnelHealth | None) -> dict[str, Any] | None:
    """What the probes through one tunnel port say (None: it is not probed here)."""
    if health is None:
        return None
    last = health.last_answer_at
    return {
        "rtt_ms": None if health.rtt_seconds is None else round(health.rtt_seconds * 1000, 3),
        "loss": round(health.loss, 3),
        "last_answer_at": None if last is None else datetime.fromtimestamp(last, UTC).isoformat(),
        "sent": health.sent,
        "answered": health.answered,
    }


def with_tunnels(view: dict[str, Any], prefix: str, probed: Probed) -> dict[str, Any]:
    """An expansion's view with each peer's `tunnel` (its port's probes) added."""
    for p in view.get("peers") or []:
        vni = p.get("vni")
        p["tunnel"] = tunnel(probed(naming.vxlan(prefix, vni))) if isinstance(vni, int) else None
    return view


def probes(
    available: bool, reason: str | None, period: float | None, peers: dict[str, PeerProbes]
) -> dict[str, Any]:
    """The probes of every tunnel port, per peer (the agent's status)."""
    return {
        "available": available,
        "reason": reason,
        "period_s": period,
        "peers": [
            {
                "peer": p.peer,
                "tunnels": p.tunnels,
                "answering": p.answering,
                "silent": p.silent,
                "unanswered": p.unanswered,
                "rtt_ms": None if p.rtt_seconds is None else round(p.rtt_seconds * 1000, 3),
                "loss": round(p.loss, 3),
            }
            for p in peers.values()
        ],
    }


def peer(p: m.Peer) -> dict[str, Any]:
    return {
        "name": p.name,
        "federation_url": p.federation_url,
        "underlay_endpoint": p.underlay_endpoint,
        # the pinned CA by fingerprint only: the PEM is long and the admin has it
        "tls_ca_sha256": tls.fingerprint(p.tls_ca) if p.tls_ca else None,
        "created_at": _ts(p.created_at),
    }


def link(lk: m.Link) -> dict[str, Any]:
    return {
        "peer": lk.peer.name,
        "local_endpoint": lk.local_endpoint,
        "remote_endpoint": lk.remote_endpoint,
        "tunnel_type": lk.tunnel_type,
        "mtu": lk.mtu,
        "enabled": lk.enabled,
        "encrypted": lk.encrypted,
        "ike_policy": (lk.ike_policy.name if lk.ike_policy else "default")
        if lk.encrypted
        else None,
        "ipsec_policy": (lk.ipsec_policy.name if lk.ipsec_policy else "default")
        if lk.encrypted
        else None,
        "peer_tunnel_endpoint": lk.peer_tunnel_endpoint,
        "mtu_budget": budget.view(lk),
        "status": {
            "state": lk.state,
            "reason": lk.reason,
            "checked_at": _ts(lk.checked_at),
            "ipsec": lk.ipsec_status,
        },
    }


def agreement(a: m.Agreement) -> dict[str, Any]:
    return {
        "peer": a.peer.name,
        "projects": list(a.projects),
        "peer_projects": list(a.peer_projects),
        "max_expansions_per_project": a.max_expansions_per_project,
        "default_rate_mbit": a.default_rate_mbit,
        "proxy_services": list(a.proxy_services or []),
    }


def overall(statuses: list[str]) -> str:
    if not statuses:
        return "pending"
    for state in ("deleting", "error", "pending"):
        if state in statuses:
            return state
    return "active"


def effective_rate(e: m.Expansion, t: m.Target) -> float | None:
    """The expansion's own limit, else the agreement's per-project default."""
    if e.rate_mbit is not None:
        return e.rate_mbit
    agreement = t.peer.agreement
    return agreement.default_rate_mbit if agreement is not None else None


def expansion(e: m.Expansion) -> dict[str, Any]:
    peers: list[dict[str, Any]] = [
        {
            "peer": t.peer.name,
            "vni": t.vni,
            "status": t.status,
            "reason": t.reason,
            "rate_mbit": effective_rate(e, t),
            "direct": sorted(t.direct or []),
        }
        for t in e.targets
    ]
    return {
        "id": e.uid,
        "project": e.project,
        "network": e.network,
        "cidr": e.cidr,
        "vni": e.requested_vni,
        "rate_mbit": e.rate_mbit,
        "status": "deleting" if e.deleting else overall([p["status"] for p in peers]),
        "peers": peers,
        # every pair of clouds as the origin's data plane follows it (domain/relay.py)
        "paths": list(e.paths or []),
        "created_at": _ts(e.created_at),
    }


def replica(r: m.Replica, bridge: str | None = None) -> dict[str, Any]:
    return {
        "id": r.uid,
        "peer": r.peer.name,
        "project": r.project.name,
        "origin_project": r.project.origin_name,
        "network": r.network,
        "cidr": r.cidr,
        "vni": r.vni,
        "bridge": bridge,
        "status": r.status,
        "reason": r.reason,
        "members": list(r.members or []),
        "direct": sorted(r.direct_sent or []),
    }


def replica_here(r: m.Replica, prefix: str, probed: Probed | None = None) -> dict[str, Any]:
    """A replica as this agent's admin sees it: with the bridge that carries it on this host
    (named as the reconciler names it, reconciler/desired.py) and what the probes through its
    tunnel port to the origin say."""
    view = replica(r, naming.bridge(prefix, owners.replica(r.id).key))
    if probed is not None:
        view["tunnel"] = tunnel(probed(naming.vxlan(prefix, r.vni))) if r.vni is not None else None
    return view
