"""The topology page: `GET /v1/topology` (admin, JSON: service/topology.py) and
`GET /ui/topology`, one self-contained HTML page (api/static/topology.html) that holds no data:
its script fetches the JSON every 2 s with the admin token it reads from the URL's fragment
(`#token=…`, which browsers never send to the server) or asks for."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse

from intercloud.api import auth
from intercloud.service import topology
from intercloud.store import models as m

router = APIRouter(tags=["admin"])

# The page runs its own inline script and style and talks to this agent only; nothing else
# may load (no external assets: it works offline) and no other site may frame it.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@cache
def page() -> str:
    return resources.files("intercloud.api").joinpath("static/topology.html").read_text("utf-8")


@router.get("/v1/topology", response_model=dict[str, Any], dependencies=[Depends(auth.admin_async)])
async def get_topology(request: Request) -> Response:
    """This cloud, its links (state, reason, bytes) and its networks' members and paths."""
    c = auth.ctx(request)
    here = c.cfg.agent.name

    def build() -> object:
        with c.store.session() as s:
            return topology.build(s, here)

    def extend(view: dict[str, Any]) -> dict[str, Any]:  # the probes' round trips are live
        return topology.with_rtt(view, c.probes.peers())

    return await auth.reads(request).respond(
        ("admin", "topology"), build, extend, tables=(m.Link.__tablename__,)
    )


@router.get("/ui/topology", include_in_schema=False)
def topology_page() -> HTMLResponse:
    return HTMLResponse(page(), headers=PAGE_HEADERS)
