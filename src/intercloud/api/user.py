"""User API: a project's networks and expansions. Other projects' objects are 404."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from intercloud.api import auth
from intercloud.api.schemas import ExpansionCreate, ExpansionUpdate
from intercloud.service import user as svc
from intercloud.service import views

router = APIRouter(prefix="/v1", tags=["user"])


@router.get("/networks")
def list_networks(request: Request, project: str = Depends(auth.project)) -> list[dict[str, Any]]:
    c = auth.ctx(request)
    with c.store.session() as s:
        return svc.list_networks(s, c.cloud, project)


@router.post("/expansions", status_code=201)
def create_expansion(
    body: ExpansionCreate, request: Request, project: str = Depends(auth.project)
) -> Any:
    c = auth.ctx(request)
    dp = c.cfg.dataplane
    with c.store.session() as s:
        out, created = svc.create_expansion(
            s,
            c.cloud,
            project,
            body.network,
            body.peers,
            body.vni,
            body.rate_mbit,
            vni_range=(dp.vni_min, dp.vni_max),
        )
    if created:
        c.reconciler.trigger()
        return out
    return JSONResponse(out, status_code=200)


# Reads run on the event loop and answer from the read cache (api/reads.py).
@router.get("/expansions", response_model=list[dict[str, Any]])
async def list_expansions(request: Request, project: str = Depends(auth.project_async)) -> Response:
    c = auth.ctx(request)

    def build() -> list[dict[str, Any]]:
        with c.store.session() as s:
            return svc.list_expansions(s, project)

    return await auth.reads(request).respond(("expansions", project), build)


@router.get("/expansions/{uid}", response_model=dict[str, Any])
async def get_expansion(
    uid: str, request: Request, project: str = Depends(auth.project_async)
) -> Response:
    c = auth.ctx(request)

    def build() -> dict[str, Any]:
        with c.store.session() as s:
            return views.expansion(svc.get_expansion(s, project, uid))

    def extend(view: dict[str, Any]) -> dict[str, Any]:  # the probes' figures are live
        return views.with_tunnels(view, c.cfg.dataplane.prefix, c.probes.health)

    return await auth.reads(request).respond(("expansion", project, uid), build, extend)


@router.patch("/expansions/{uid}")
def update_expansion(
    uid: str, body: ExpansionUpdate, request: Request, project: str = Depends(auth.project)
) -> dict[str, Any]:
    c = auth.ctx(request)
    with c.store.session() as s:
        out = svc.update_expansion(s, project, uid, body.model_dump(exclude_unset=True))
    c.reconciler.trigger()
    return out


@router.delete("/expansions/{uid}", status_code=202)
def delete_expansion(uid: str, request: Request, project: str = Depends(auth.project)) -> Response:
    c = auth.ctx(request)
    with c.store.session() as s:
        out = svc.delete_expansion(s, project, uid)
    c.reconciler.trigger()
    return JSONResponse(out, status_code=202)
