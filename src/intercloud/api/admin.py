"""Admin API: peers, links, agreements, replicas, status."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from intercloud import __version__
from intercloud.api import auth
from intercloud.api.schemas import (
    AgreementCreate,
    AgreementUpdate,
    LinkCreate,
    LinkUpdate,
    PeerCreate,
)
from intercloud.domain import naming
from intercloud.service import admin as svc
from intercloud.service import replicas, views

router = APIRouter(prefix="/v1", tags=["admin"], dependencies=[Depends(auth.admin)])


def _changed(request: Request) -> None:
    auth.ctx(request).reconciler.trigger()


@router.post("/peers", status_code=201)
def create_peer(body: PeerCreate, request: Request) -> dict[str, Any]:
    c = auth.ctx(request)
    with c.store.session() as s:
        out = svc.create_peer(
            s, c.cfg.agent.name, body.name, body.federation_url, body.underlay_endpoint, body.key
        )
    return out


@router.get("/peers")
def list_peers(request: Request) -> list[dict[str, Any]]:
    with auth.ctx(request).store.session() as s:
        return svc.list_peers(s)


@router.get("/peers/{name}")
def get_peer(name: str, request: Request) -> dict[str, Any]:
    with auth.ctx(request).store.session() as s:
        return views.peer(svc.get_peer(s, name, "name"))


@router.delete("/peers/{name}", status_code=204)
def delete_peer(name: str, request: Request) -> Response:
    with auth.ctx(request).store.session() as s:
        svc.delete_peer(s, name)
    return Response(status_code=204)


@router.post("/links", status_code=201)
def create_link(body: LinkCreate, request: Request) -> dict[str, Any]:
    c = auth.ctx(request)
    with c.store.session() as s:
        out = svc.create_link(
            s,
            c.dataplane.supported_tunnels,
            body.peer,
            body.local_endpoint,
            body.remote_endpoint,
            body.tunnel_type,
            body.mtu,
            body.enabled,
        )
    _changed(request)
    return out


@router.get("/links")
def list_links(request: Request) -> list[dict[str, Any]]:
    with auth.ctx(request).store.session() as s:
        return svc.list_links(s)


@router.get("/links/{peer}")
def get_link(peer: str, request: Request) -> dict[str, Any]:
    with auth.ctx(request).store.session() as s:
        return views.link(svc.get_link(s, peer))


@router.patch("/links/{peer}")
def update_link(peer: str, body: LinkUpdate, request: Request) -> dict[str, Any]:
    with auth.ctx(request).store.session() as s:
        out = svc.update_link(s, peer, body.enabled, body.mtu)
    _changed(request)
    return out


@router.delete("/links/{peer}", status_code=204)
def delete_link(peer: str, request: Request) -> Response:
    with auth.ctx(request).store.session() as s:
        svc.delete_link(s, peer)
    _changed(request)
    return Response(status_code=204)


@router.post("/agreements", status_code=201)
def create_agreement(body: AgreementCreate, request: Request) -> dict[str, Any]:
    with auth.ctx(request).store.session() as s:
        return svc.create_agreement(
            s, body.peer, body.projects, body.peer_projects, body.max_expansions_per_project
        )


@router.get("/agreements")
def list_agreements(request: Request) -> list[dict[str, Any]]:
    with auth.ctx(request).store.session() as s:
        return svc.list_agreements(s)


@router.get("/agreements/{peer}")
def get_agreement(peer: str, request: Request) -> dict[str, Any]:
    with auth.ctx(request).store.session() as s:
        return views.agreement(svc.get_agreement(s, peer))


@router.patch("/agreements/{peer}")
def update_agreement(peer: str, body: AgreementUpdate, request: Request) -> dict[str, Any]:
    with auth.ctx(request).store.session() as s:
        return svc.update_agreement(s, peer, body.model_dump())


@router.delete("/agreements/{peer}", status_code=204)
def delete_agreement(peer: str, request: Request) -> Response:
    with auth.ctx(request).store.session() as s:
        svc.delete_agreement(s, peer)
    return Response(status_code=204)


def _replica_views(request: Request) -> list[dict[str, Any]]:
    c = auth.ctx(request)
    prefix = c.cfg.dataplane.prefix
    with c.store.session() as s:
        return [views.replica(r, naming.bridge(prefix, f"r{r.id}")) for r in replicas.list_all(s)]


@router.get("/replicas")
def list_replicas(request: Request) -> list[dict[str, Any]]:
    return _replica_views(request)


@router.get("/status")
def status(request: Request) -> dict[str, Any]:
    c = auth.ctx(request)
    with c.store.session() as s:
        links = svc.list_links(s)
        peers = len(svc.list_peers(s))
        agreements = len(svc.list_agreements(s))
    reps = _replica_views(request)
    return {
        "agent": c.cfg.agent.name,
        "version": __version__,
        "dataplane": c.cfg.dataplane.driver,
        "cloud": c.cfg.cloud.driver,
        "reconciler": c.reconciler.stats.as_dict(),
        "links": links,
        "replicas": reps,
        "counts": {
            "peers": peers,
            "links": len(links),
            "agreements": agreements,
            "replicas": len(reps),
        },
    }
