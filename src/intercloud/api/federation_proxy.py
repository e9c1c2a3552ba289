"""The peer's end of the tenant API proxy: a signed call from the origin's agent, made in this
cloud as the replica of the origin's project (service/proxy.py says which; the cloud driver
makes the call with that project's token), answered as it streams from the service: its status,
the headers that matter and its body in signed frames (federation/frames.py), never held whole.
Refusals before the service answered are JSON, signed whole as every federation answer."""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from intercloud.api import auth
from intercloud.api.auth import FEDERATION_STATE
from intercloud.api.proxy import scopes
from intercloud.api.schemas import ProxyEnvelope
from intercloud.domain import proxy, text
from intercloud.domain.proxy import Answer, Call
from intercloud.errors import IntercloudError, Invalid, PeerError
from intercloud.federation import frames, signing
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
        if len(answer.body) > limit:
            raise TooLarge(f"the answer of the {call.service_type} service is larger than {limit}")
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
    who, key, nonce = getattr(request.state, FEDERATION_STATE)
    sig = request.headers.get(signing.HEADER_SIGNATURE, "")
    writer = frames.Writer(key, c.cfg.agent.name, who, nonce, sig)
    return StreamingResponse(_frames(writer, answer, limit), media_type=frames.MEDIA_TYPE)


class TooLarge(PeerError):
    """The service's answer is over the limit before anything of it was sent."""


def _frames(writer: frames.Writer, answer: Answer, limit: int) -> Iterator[bytes]:
    """The answer's frames as its body arrives; past `limit` (or the service failing) the
    stream stops without its END, which the origin sees as a broken answer."""
    try:
        yield writer.head(answer.status, answer.headers)
        yield from writer.data(answer.body)
        for piece in answer.rest or ():
            yield from writer.data(piece)
            if writer.total > limit:
                log.warning("proxy: the answer is larger than %d bytes: stream cut", limit)
                return
    except IntercloudError as exc:  # the service failed mid-answer
        log.warning("proxy: the answer stream was cut: %s", exc.message)
        return
    else:
        yield writer.end()
    finally:
        close = getattr(answer.rest, "close", None)
        if close is not None:
            close()
