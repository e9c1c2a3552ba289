"""The peer's end of the tenant API proxy: a signed call from the origin's agent, made in this
cloud as the replica of the origin's project (service/proxy.py says which; the cloud driver
makes the call with that project's token), answered with the service's status, the headers
that matter and its body (base64), all signed with the answer."""

from __future__ import annotations

import base64
import binascii
import logging
import time
from typing import Any

from fastapi import APIRouter, Depends, Request

from intercloud.api import auth
from intercloud.api.proxy import scopes
from intercloud.api.schemas import ProxyEnvelope
from intercloud.domain import proxy, text
from intercloud.domain.proxy import Call
from intercloud.errors import IntercloudError, Invalid
from intercloud.service import proxy as scope

router = APIRouter(prefix="/v1/federation", tags=["federation"])
log = logging.getLogger("intercloud.proxy")


def _call(body: ProxyEnvelope) -> Call:
    try:
        raw = base64.b64decode(body.body, validate=True)
    except binascii.Error:
        raise Invalid("body: must be base64", field="body") from None
    return Call(
        project=body.project,
        service_type=proxy.service_type(body.service_type),
        method=proxy.method(body.method),
        path=proxy.path(body.path),
        query=proxy.pairs_checked(body.query),
        headers=proxy.headers(body.headers),
        body=raw,
    )


def _replica_scope(request: Request, peer: str, call: Call) -> str:
    with auth.ctx(request).store.session() as s:
        return scope.replica_scope(s, peer, call.project, call.service_type)


@router.post("/proxy")
def proxied(body: ProxyEnvelope, request: Request, peer: str = Depends(auth.peer)) -> Any:
    c = auth.ctx(request)
    started = time.perf_counter()
    status: int | str = "refused"
    try:
        call = _call(body)
        project = scopes(request).get(
            ("replica", peer, call.project, call.service_type),
            c.store.generation,
            lambda: _replica_scope(request, peer, call),
        )
        limit = min(c.cfg.proxy.max_answer, body.max_answer)
        answer = c.cloud.forward(project, call, limit, c.cfg.proxy.timeout)
        status = answer.status
    except IntercloudError as exc:
        status = exc.status_code
        raise
    finally:
        log.info(
            "proxy from %s: %s %s %s/%s -> %s (%.0f ms)",
            peer,
            text.clean(body.project, 63),
            text.clean(body.method, 8),
            text.clean(body.service_type, 32),
            text.clean(body.path, 200),
            status,
            (time.perf_counter() - started) * 1000,
        )
    return {
        "status": answer.status,
        "headers": [list(h) for h in answer.headers],
        "body": base64.b64encode(answer.body).decode(),
    }
