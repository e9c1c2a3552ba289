"""The federation as this cloud sees it, for the topology page (api/topology.py): the clouds,
this cloud's links with their state, and every network it takes part in with its members and
the paths between them. Read from the store only (what the reconciler last wrote): no peer is
asked, so the page costs one read however often it refreshes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from intercloud.domain.probe import PeerProbes
from intercloud.service import views
from intercloud.store import models as m
from intercloud.store.loads import EXPANSION_VIEWS, REPLICA_VIEWS


def _ts(value: Any) -> str | None:
    return value.isoformat() if value else None


def _children(ipsec: dict[str, Any]) -> list[dict[str, Any]]:
    """The CHILD_SAs of a link's stored IPsec status, those of every lane included."""
    found = list(ipsec.get("children") or [])
    for lane in ipsec.get("lanes") or []:
        found += lane.get("children") or []
    return [c for c in found if isinstance(c, dict)]


def _counter(children: list[dict[str, Any]], key: str) -> int | None:
    values = [c[key] for c in children if isinstance(c.get(key), int)]
    return sum(values) if values else None


def link(lk: m.Link, here: str) -> dict[str, Any]:
    ipsec = lk.ipsec_status or {}
    children = _children(ipsec)
    return {
        "between": [here, lk.peer.name],
        "peer": lk.peer.name,
        "state": lk.state,
        "reason": lk.reason,
        "enabled": lk.enabled,
        "encrypted": lk.encrypted,
        "checked_at": _ts(lk.checked_at),
        "ike_state": ipsec.get("ike_state"),
        # the median round trip of the probes through the link's tunnel ports (with_rtt);
        # null: no tunnel port answered (none, or no probes on this data plane)
        "rtt_ms": None,
        # summed over the link's CHILD_SAs (all lanes), as charon last reported them
        "bytes_in": _counter(children, "bytes_in"),
        "bytes_out": _counter(children, "bytes_out"),
    }


def _origin(e: m.Expansion, here: str) -> dict[str, Any]:
    view = views.expansion(e)
    return {
        "id": view["id"],
        "origin": here,
        "project": view["project"],
        "network": view["network"],
        "status": view["status"],
        "members": [here, *sorted(p["peer"] for p in view["peers"])],
        "peers": [
            {"peer": p["peer"], "status": p["status"], "reason": p["reason"]} for p in view["peers"]
        ],
        "paths": view["paths"],
    }


def _replica(r: m.Replica, here: str) -> dict[str, Any]:
    """A network a peer expanded here: its paths are the origin's to know; what this agent
    knows is whom it reaches directly (the origin always, other members per `direct`)."""
    direct = sorted({r.peer.name, *(r.direct_sent or [])} - {here})
    return {
        "id": r.uid,
        "origin": r.peer.name,
        "project": r.project.name,
        "network": r.network,
        "status": r.status,
        "members": sorted(set(r.members or []) | {here, r.peer.name}),
        "peers": [],
        "paths": [
            {"between": sorted([here, other]), "state": "direct", "via": []} for other in direct
        ],
    }


def with_rtt(view: dict[str, Any], peers: Mapping[str, PeerProbes]) -> dict[str, Any]:
    """The topology with each link's round trip, as the probes through its tunnels measure it
    (live: not in the store, so not in the cached view)."""
    for lk in view.get("links") or []:
        probed = peers.get(lk.get("peer"))
        rtt = probed.rtt_seconds if probed is not None else None
        lk["rtt_ms"] = None if rtt is None else round(rtt * 1000, 3)
    return view


def build(s: Session, here: str) -> dict[str, Any]:
    """The topology: `clouds` (this one first, then every other cloud named by a link or an
    expansion), `links` (this cloud's, by peer), `expansions` (ours, then peers' replicas)."""
    links = [link(lk, here) for lk in s.scalars(select(m.Link).join(m.Peer).order_by(m.Peer.name))]
    networks = [_origin(e, here) for e in s.scalars(EXPANSION_VIEWS.order_by(m.Expansion.id))]
    networks += [_replica(r, here) for r in s.scalars(REPLICA_VIEWS.order_by(m.Replica.id))]
    peers = {p.name for p in s.scalars(select(m.Peer))}
    others = peers | {c for n in networks for c in n["members"]}
    clouds = [{"name": here, "here": True}]
    clouds += [{"name": c, "here": False, "peer": c in peers} for c in sorted(others - {here})]
    return {"cloud": here, "clouds": clouds, "links": links, "expansions": networks}
