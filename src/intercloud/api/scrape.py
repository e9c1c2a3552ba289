"""GET /metrics: the agent's metrics in Prometheus' text format, for the admin token. (A
scraper without it reads them on `agent.metrics_listen`, served by the agent itself.)"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from intercloud.api import auth
from intercloud.metrics import CONTENT_TYPE

router = APIRouter(tags=["admin"], dependencies=[Depends(auth.admin_async)])


class Exposition(Response):
    media_type = CONTENT_TYPE


@router.get(
    "/metrics",
    response_class=Exposition,
    responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> Exposition:
    """Prometheus exposition (text format 0.0.4); reads the store (a worker thread)."""
    return Exposition(auth.ctx(request).metrics.exposition())
