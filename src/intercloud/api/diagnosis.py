"""`GET /v1/links/{peer}/diagnosis` and `GET /v1/diagnosis` (admin): the layers of a link walked
now (service/diagnosis.py), the first broken one named with its advice."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from intercloud.api import auth
from intercloud.errors import CloudError
from intercloud.service.diagnosis import Diagnoser

router = APIRouter(prefix="/v1", tags=["admin"], dependencies=[Depends(auth.admin)])


def _diagnoser(request: Request) -> Diagnoser:
    diagnoser = auth.ctx(request).diagnoser
    if diagnoser is None:
        raise CloudError("this agent cannot diagnose its links (no diagnoser wired)")
    return diagnoser


# Plain `def`: the walk waits for the peer, charon and probes (seconds): in a worker thread.
@router.get("/links/{peer}/diagnosis")
def diagnose_link(peer: str, request: Request) -> dict[str, Any]:
    """The walk of the link to `peer` (404 naming it when there is no such peer or link)."""
    return _diagnoser(request).link(peer).as_dict()


@router.get("/diagnosis")
def diagnose_links(request: Request) -> dict[str, Any]:
    """The walk of every link, by peer name."""
    walks = [d.as_dict() for d in _diagnoser(request).links()]
    return {"links": walks, "broken": [w["peer"] for w in walks if w["broken"]]}
