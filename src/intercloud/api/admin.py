"""Admin API: peers, links, agreements, replicas, status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from intercloud import __version__
from intercloud.api import auth
from intercloud.api.schemas import (
    AgreementCreate,
    AgreementUpdate,
    IkePolicyCreate,
    IpsecPolicyCreate,
    LinkCreate,
    LinkUpdate,
    PeerCreate,
    PeerUpdate,
)
from intercloud.domain.ipsec_backend import lanes_in_use
from intercloud.service import admin as svc
from intercloud.service import policies, replicas, views
from intercloud.store import models as m

# the views that show the links' checks, which the reconciler writes on every pass
LINKS = (m.Link.__tablename__,)

router = APIRouter(prefix="/v1", tags=["admin"], dependencies=[Depends(auth.admin_async)])


async def _cached(
    request: Request,
    key: tuple[str, ...],
    view: Callable[[Session], Any],
    tables: tuple[str, ...] = (),
) -> Response:
    """An admin view from the database, kept until the next write (api/reads.py); the
    handlers that use it run on the event loop. `tables`: see ReadCache.respond."""
    store = auth.ctx(request).store

    def build() -> Any:
        with store.session() as s:
            return view(s)

    return await auth.reads(request).respond(("admin", *key), build, tables=tables)


def _changed(request: Request) -> None:
    auth.ctx(request).reconciler.trigger()


@router.post("/peers", status_code=201)
def create_peer(body: PeerCreate, request: Request) -> dict[str, Any]:
    c = auth.ctx(request)
    with c.store.session() as s:
        out = svc.create_peer(
            s,
            c.cfg.agent.name,
            body.name,
            body.federation_url,
            body.underlay_endpoint,
            body.key,
            tls_ca=body.tls_ca,
            plain_http=c.cfg.agent.plain_http,
        )
    return out


@router.patch("/peers/{name}")
def update_peer(name: str, body: PeerUpdate, request: Request) -> dict[str, Any]:
    c = auth.ctx(request)
    with c.store.session() as s:
        out = svc.update_peer(
            s, name, body.model_dump(exclude_unset=True), plain_http=c.cfg.agent.plain_http
        )
    _changed(request)
    return out


@router.get("/peers", response_model=list[dict[str, Any]])
async def list_peers(request: Request) -> Response:
    return await _cached(request, ("peers",), svc.list_peers)


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
            c.encrypts,
            body.model_dump(exclude_unset=True),
        )
    _changed(request)
    return out


@router.get("/links", response_model=list[dict[str, Any]])
async def list_links(request: Request) -> Response:
    return await _cached(request, ("links",), svc.list_links, LINKS)


@router.get("/links/{peer}", response_model=dict[str, Any])
async def get_link(peer: str, request: Request) -> Response:
    return await _cached(
        request, ("link", peer), lambda s: views.link(svc.get_link(s, peer)), LINKS
    )


@router.patch("/links/{peer}")
def update_link(peer: str, body: LinkUpdate, request: Request) -> dict[str, Any]:
    c = auth.ctx(request)
    with c.store.session() as s:
        out = svc.update_link(s, peer, c.encrypts, body.model_dump(exclude_unset=True))
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
        out = svc.create_agreement(
            s,
            body.peer,
            body.projects,
            body.peer_projects,
            body.max_expansions_per_project,
            body.default_rate_mbit,
            body.proxy_services,
        )
    _changed(request)
    return out


@router.get("/agreements", response_model=list[dict[str, Any]])
async def list_agreements(request: Request) -> Response:
    return await _cached(request, ("agreements",), svc.list_agreements)


@router.get("/agreements/{peer}")
def get_agreement(peer: str, request: Request) -> dict[str, Any]:
    with auth.ctx(request).store.session() as s:
        return views.agreement(svc.get_agreement(s, peer))


@router.patch("/agreements/{peer}")
def update_agreement(peer: str, body: AgreementUpdate, request: Request) -> dict[str, Any]:
    with auth.ctx(request).store.session() as s:
        out = svc.update_agreement(s, peer, body.model_dump(exclude_unset=True))
    _changed(request)
    return out


@router.delete("/agreements/{peer}", status_code=204)
def delete_agreement(peer: str, request: Request) -> Response:
    with auth.ctx(request).store.session() as s:
        svc.delete_agreement(s, peer)
    return Response(status_code=204)


@router.post("/ike-policies", status_code=201)
def create_ike_policy(body: IkePolicyCreate, request: Request) -> dict[str, Any]:
    with auth.ctx(request).store.session() as s:
        return policies.create_ike(s, body.model_dump(exclude_unset=True))


@router.get("/ike-policies")
def list_ike_policies(request: Request) -> list[dict[str, Any]]:
    with auth.ctx(request).store.session() as s:
        return policies.list_ike(s)


@router.get("/ike-policies/{name}")
def get_ike_policy(name: str, request: Request) -> dict[str, Any]:
    with auth.ctx(request).store.session() as s:
        return policies.ike_view(policies.get_ike(s, name))


@router.delete("/ike-policies/{name}", status_code=204)
def delete_ike_policy(name: str, request: Request) -> Response:
    with auth.ctx(request).store.session() as s:
        policies.delete_ike(s, name)
    return Response(status_code=204)


@router.post("/ipsec-policies", status_code=201)
def create_ipsec_policy(body: IpsecPolicyCreate, request: Request) -> dict[str, Any]:
    with auth.ctx(request).store.session() as s:
        return policies.create_ipsec(s, body.model_dump(exclude_unset=True))


@router.get("/ipsec-policies")
def list_ipsec_policies(request: Request) -> list[dict[str, Any]]:
    with auth.ctx(request).store.session() as s:
        return policies.list_ipsec(s)


@router.get("/ipsec-policies/{name}")
def get_ipsec_policy(name: str, request: Request) -> dict[str, Any]:
    with auth.ctx(request).store.session() as s:
        return policies.ipsec_view(policies.get_ipsec(s, name))


@router.delete("/ipsec-policies/{name}", status_code=204)
def delete_ipsec_policy(name: str, request: Request) -> Response:
    with auth.ctx(request).store.session() as s:
        policies.delete_ipsec(s, name)
    return Response(status_code=204)


def _replica_views(request: Request) -> list[dict[str, Any]]:
    c = auth.ctx(request)
    prefix = c.cfg.dataplane.prefix
    with c.store.session() as s:
        return [views.replica_here(r, prefix, c.probes.health) for r in replicas.list_all(s)]


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
        "ipsec": {
            "driver": c.cfg.ipsec.driver,
            "backend": c.reconciler.ipsec_backend,
            # charons sharing the encryption (domain/ipsec_backend.py)
            "lanes_configured": 1 + len(c.cfg.ipsec.lanes),
            "lanes": lanes_in_use(1 + len(c.cfg.ipsec.lanes), c.reconciler.ipsec_backend),
        },
        "cloud": c.cfg.cloud.driver,
        "reconciler": c.reconciler.stats.as_dict(),
        # the probes through the tunnel ports, per peer (domain/probe.py)
        "probes": views.probes(
            c.probes.available, c.probes.unavailable_reason, c.probes.period, c.probes.peers()
        ),
        "links": links,
        "replicas": reps,
        "ha": c.ha.status() if c.ha is not None else None,  # gateway HA (docs/ha.md)
        "counts": {
            "peers": peers,
            "links": len(links),
            "agreements": agreements,
            "replicas": len(reps),
        },
    }
