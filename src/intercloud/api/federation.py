"""Federation API: calls from authenticated peer agents, each scoped to that peer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from intercloud.api import auth
from intercloud.api.context import AppContext
from intercloud.api.schemas import (
    AdjacencyPut,
    Confirmations,
    DirectPut,
    PortsPut,
    RelaysPut,
    ReplicaPut,
    VniAgree,
)
from intercloud.config import DataplaneSection
from intercloud.domain import validation as v
from intercloud.errors import Conflict, IntercloudError
from intercloud.service import adjacencies, admin, ports, replicas, views

router = APIRouter(prefix="/v1/federation", tags=["federation"])


def _uid(uid: str) -> str:
    """The path's expansion id, checked after the caller's signature (each handler takes it
    after `peer`) and before any lookup: ASCII, one canonical form."""
    return v.uid(uid)


def _vni_range(dp: DataplaneSection, low: int | None, high: int | None) -> tuple[int, int]:
    """The VNIs both agents may use: ours, within the caller's range if it says it."""
    low, high = max(dp.vni_min, low or dp.vni_min), min(dp.vni_max, high or dp.vni_max)
    if low > high:
        raise Conflict("vni: no VNI lies in both agents' ranges", field="vni")
    return low, high


@router.get("/health")
def health(request: Request, peer: str = Depends(auth.peer)) -> dict[str, Any]:
    """Also tells the caller our own address for its tunnel (behind NAT the caller only knows
    the translated one)."""
    c = auth.ctx(request)
    with c.store.session() as s:
        link = admin.get_peer(s, peer).link
        endpoint = link.local_endpoint if link is not None else None
    return {
        "name": c.cfg.agent.name,
        "time": datetime.now(UTC).isoformat(),
        "tunnel_endpoint": endpoint,
    }


@router.put("/replicas/{uid}")
def put_replica(
    body: ReplicaPut,
    request: Request,
    peer: str = Depends(auth.peer),
    uid: str = Depends(_uid),
) -> Any:
    c = auth.ctx(request)
    out, outcome = _upsert(c, peer, uid, body)
    if outcome != "same":
        c.reconciler.trigger()
    return JSONResponse(out, status_code=201 if outcome == "created" else 200)


def _fields(body: ReplicaPut) -> dict[str, Any]:
    """The replica's fields as service/replicas takes them."""
    return {
        "project": body.project,
        "network": body.network,
        "cidr": body.cidr,
        "members": body.members,
        "addressing": body.addressing.model_dump() if body.addressing is not None else None,
    }


def _upsert(c: AppContext, peer: str, uid: str, body: ReplicaPut) -> tuple[dict[str, Any], str]:
    """service/replicas.upsert in a session of its own: (view, outcome)."""
    with c.store.session() as s:
        origin = admin.get_peer(s, peer)
        asked = replicas.asked(origin, uid, **_fields(body))
        return replicas.upsert(s, origin, asked, max_replicas=c.cfg.agent.max_replicas_per_peer)


@router.post("/confirmations")
def confirm_replicas(
    body: Confirmations, request: Request, peer: str = Depends(auth.peer)
) -> dict[str, Any]:
    """Many PUT /replicas/{uid} in one call (the origin's periodic re-checks): each replica
    as that call would answer it, or the error it would have answered, by uid."""
    c = auth.ctx(request)
    # those held here in one session and one query (100 sessions of 4 queries each were
    # ~0.25 s of a peer's interpreter per call); a new one as its own PUT would make it
    with c.store.session() as s:
        held = replicas.confirm(
            s, admin.get_peer(s, peer), [(i.uid, _fields(i)) for i in body.replicas]
        )
    out: list[dict[str, Any]] = []
    changed = False
    for item, kept in zip(body.replicas, held, strict=True):
        try:
            got = kept or _upsert(c, peer, item.uid, item)
            if isinstance(got, IntercloudError):
                raise got
        except IntercloudError as exc:  # that replica only: the others are answered
            out.append({"uid": item.uid, "error": exc.message})
            continue
        view, outcome = got
        out.append({"uid": item.uid, **{k: view[k] for k in ("status", "vni", "reason")}})
        changed = changed or outcome != "same"
    if changed:
        c.reconciler.trigger()
    return {"replicas": out}


@router.get("/replicas/{uid}")
def get_replica(
    request: Request, peer: str = Depends(auth.peer), uid: str = Depends(_uid)
) -> dict[str, Any]:
    with auth.ctx(request).store.session() as s:
        return views.replica(replicas.get(s, admin.get_peer(s, peer), uid))


@router.put("/replicas/{uid}/vni")
def agree_vni(
    body: VniAgree,
    request: Request,
    peer: str = Depends(auth.peer),
    uid: str = Depends(_uid),
) -> dict[str, Any]:
    c = auth.ctx(request)
    low, high = _vni_range(c.cfg.dataplane, body.vni_min, body.vni_max)
    if body.vni is not None:
        v.vni(body.vni, "vni", low, high)
    with c.store.session() as s:
        out = replicas.agree_vni(s, admin.get_peer(s, peer), uid, body.vni, body.exclude, low, high)
    c.reconciler.trigger()
    return out


@router.delete("/replicas/{uid}", status_code=204)
def delete_replica(
    request: Request, peer: str = Depends(auth.peer), uid: str = Depends(_uid)
) -> Response:
    c = auth.ctx(request)
    with c.store.session() as s:
        replicas.delete(s, admin.get_peer(s, peer), uid)
    c.reconciler.trigger()
    return Response(status_code=204)


@router.put("/adjacencies/{uid}")
def agree_adjacency(
    body: AdjacencyPut,
    request: Request,
    peer: str = Depends(auth.peer),
    uid: str = Depends(_uid),
) -> dict[str, Any]:
    """Another member of `origin`'s network `uid` agrees the VNI of its direct tunnel with us."""
    c = auth.ctx(request)
    low, high = _vni_range(c.cfg.dataplane, body.vni_min, body.vni_max)
    with c.store.session() as s:
        out = adjacencies.agree_adjacency(
            s,
            admin.get_peer(s, peer),
            body.origin,
            uid,
            c.cfg.agent.name,
            body.exclude,
            low,
            high,
        )
    c.reconciler.trigger()
    return out


@router.put("/expansions/{uid}/direct")
def report_direct(
    body: DirectPut,
    request: Request,
    peer: str = Depends(auth.peer),
    uid: str = Depends(_uid),
) -> dict[str, Any]:
    """A target of our expansion `uid` reports the members it reaches directly."""
    c = auth.ctx(request)
    with c.store.session() as s:
        changed = adjacencies.report_direct(s, admin.get_peer(s, peer), uid, body.direct)
    if changed:
        c.reconciler.trigger()
    return {"direct": sorted(set(body.direct))}


@router.put("/expansions/{uid}/ports")
def report_ports(
    body: PortsPut,
    request: Request,
    peer: str = Depends(auth.peer),
    uid: str = Depends(_uid),
) -> dict[str, Any]:
    """A target of our expansion `uid` reports its replica's ports (OpenStack)."""
    c = auth.ctx(request)
    with c.store.session() as s:
        stored, changed = ports.report(s, admin.get_peer(s, peer), uid, body.ports)
    if changed:
        c.reconciler.trigger()
    return {"ports": stored}


@router.put("/replicas/{uid}/relays")
def put_relays(
    body: RelaysPut,
    request: Request,
    peer: str = Depends(auth.peer),
    uid: str = Depends(_uid),
) -> dict[str, Any]:
    """The origin of our replica `uid` asks us to relay between other members of it."""
    c = auth.ctx(request)
    with c.store.session() as s:
        rep = replicas.get(s, admin.get_peer(s, peer), uid)
        changed = adjacencies.set_relays(s, rep, c.cfg.agent.name, body.relays)
        stored = list(rep.relays or [])
        if changed:
            c.reconciler.request_flush(rep.id)  # what our ports learned was for other paths
    if changed:
        c.reconciler.trigger()
    # what our data plane still relays (the origin waits for it before its own tunnel returns)
    return {"relays": stored, "applied": c.reconciler.relays_applied(rep.id)}


@router.post("/replicas/{uid}/flush", status_code=202)
def flush_replica(
    request: Request, peer: str = Depends(auth.peer), uid: str = Depends(_uid)
) -> dict[str, Any]:
    """The origin changed which members it relays for: forget what our tunnel ports learned."""
    c = auth.ctx(request)
    with c.store.session() as s:
        rep = replicas.get(s, admin.get_peer(s, peer), uid)
        c.reconciler.request_flush(rep.id)
    c.reconciler.trigger()
    return {}
