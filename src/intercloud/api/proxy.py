"""The tenant API proxy: `{method} /v1/proxy/{peer}/{service_type}/{path}` with a token of this
cloud. The caller's project must have an expansion into `peer` and our agreement with it must
allow the service type (service/proxy.py); the call goes on as a signed federation call
(PeerClient.proxy) and the peer's agent makes it in its cloud as the replica of the project
(api/federation_proxy.py). The user's token never leaves this agent: only the path, the query,
the body and the headers of domain/proxy.py are passed on.

Refusals: 401 (no or bad token), 403 (no project, no agreement, no expansion into the peer,
service type not allowed), 413 (body over proxy.max_body), 422 (path, query or headers),
429 (the project's rate), 502 (the peer's agent unreachable or its answer unusable), and the
peer's own refusals (403, 503 when its service is down) with their status. Every call is
counted (metrics: peer, service type, status class) and logged in one line, without token."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Send

from intercloud.api import auth
from intercloud.api.context import AppContext
from intercloud.domain import proxy, text
from intercloud.domain.proxy import Answer, Call
from intercloud.errors import IntercloudError, PeerError, RateLimited, TooLarge
from intercloud.federation.transport import PeerRef
from intercloud.service import proxy as scope

router = APIRouter(prefix="/v1/proxy", tags=["user"])
log = logging.getLogger("intercloud.proxy")
T = TypeVar("T")
UNKNOWN = "-"  # the metric label of a peer or service type not (yet) known to be valid


class Buckets:
    """A token bucket per project: `rate` calls per second on average, `burst` at once."""

    MAX_KEYS = 10_000

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self._levels: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """0 if a call may go now, else the seconds until one may."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, at = self._levels.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens < 1:
                self._levels[key] = (tokens, now)
                return (1 - tokens) / self.rate
            if len(self._levels) >= self.MAX_KEYS and key not in self._levels:
                self._levels.clear()  # full buckets are the default: forgetting them is safe
            self._levels[key] = (tokens - 1, now)
            return 0.0


class Scopes:
    """Scope decisions kept until the store's next shown write (Store.generation): an
    agreement, expansion or replica changed since means a new decision; refusals are not
    kept. Saves a database session per proxied call on each side."""

    MAX_KEYS = 4096

    def __init__(self) -> None:
        self._kept: dict[tuple[str, ...], tuple[int, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...], generation: int, decide: Callable[[], T]) -> T:
        with self._lock:
            hit = self._kept.get(key)
        if hit is not None and hit[0] == generation:
            return hit[1]  # type: ignore[no-any-return]
        value = decide()
        with self._lock:
            if len(self._kept) >= self.MAX_KEYS:
                self._kept.clear()
            self._kept[key] = (generation, value)
        return value


def scopes(request: Request) -> Scopes:
    state = request.app.state
    found = getattr(state, "proxy_scopes", None)
    if found is None:
        found = state.proxy_scopes = Scopes()
    return found


def buckets(request: Request) -> Buckets:
    state = request.app.state
    found = getattr(state, "proxy_buckets", None)
    if found is None:
        cfg = auth.ctx(request).cfg.proxy
        found = state.proxy_buckets = Buckets(cfg.rate, cfg.burst)
    return found


@dataclass
class Outcome:
    """What a call's log line and counter say (labels only once validated: bounded)."""

    project: str = UNKNOWN
    peer: str = UNKNOWN
    service_type: str = UNKNOWN
    status: int = 500
    sent: int = 0  # bytes of the answer's body given to the user
    broken: str = ""  # why the answer's stream broke, if it did


async def proxy_call(
    peer: str,
    service_type: str,
    path: str,
    request: Request,
    project: str = Depends(auth.project_async),
) -> Response:
    """Make the call in the peer's cloud, in its replica of the caller's project; its answer
    (status, the headers that matter, the body) unchanged, the body streaming as it comes.
    The call is counted and logged when its answer ends (or fails)."""
    c = auth.ctx(request)
    out = Outcome(project=project)
    started = time.perf_counter()
    streaming = False
    try:
        answer = await _proxy(request, c, out, peer, service_type, path)
        out.status = answer.status
        body = _relay(
            answer, out, lambda: _done(c, out, request.method, peer, service_type, path, started)
        )
        streaming = True
        return Relay(body, status_code=answer.status, headers=dict(answer.headers))
    except IntercloudError as exc:
        out.status = exc.status_code
        raise
    finally:
        if not streaming:
            _done(c, out, request.method, peer, service_type, path, started)


def _done(
    c: AppContext,
    out: Outcome,
    method: str,
    peer: str,
    service_type: str,
    path: str,
    started: float,
) -> None:
    c.metrics.proxied(out.peer, out.service_type, out.status)
    log.info(
        "proxy: project %s %s %s/%s/%s -> %d%s (%.0f ms)",
        out.project,
        method,
        text.clean(peer, 63),
        text.clean(service_type, 32),
        text.clean(path, 200),
        out.status,
        f" (its status sent, the answer broke after {out.sent} bytes: {out.broken})"
        if out.broken
        else "",
        (time.perf_counter() - started) * 1000,
    )


class Relay(StreamingResponse):
    """A proxied answer's body as it comes. When it breaks (PeerError from `_relay`) the
    status is sent already: the answer ends without its last chunk and the server closes the
    connection, which HTTP clients report as an error (never as a whole answer)."""

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        except PeerError:
            return  # logged and counted by _relay


def _relay(answer: Answer, out: Outcome, done: Callable[[], None]) -> Iterator[bytes]:
    """The answer's body, each piece verified before it is given (Relay)."""
    try:
        if answer.body:
            out.sent += len(answer.body)
            yield answer.body
        for piece in answer.rest or ():
            out.sent += len(piece)
            yield piece
    except PeerError as exc:
        out.status, out.broken = 502, exc.message  # counted as the failure it is
        raise
    finally:
        close = getattr(answer.rest, "close", None)
        if close is not None:
            close()
        done()


async def _proxy(
    request: Request, c: AppContext, out: Outcome, peer: str, service_type: str, path: str
) -> Answer:
    wait = buckets(request).take(out.project)
    if wait:
        raise RateLimited(
            f"project {out.project}: more than {c.cfg.proxy.burst} proxied calls at once or "
            f"{c.cfg.proxy.rate:g} per second; retry in {wait:.1f} s"
        )
    call = Call(
        project=out.project,
        service_type=proxy.service_type(service_type),
        method=proxy.method(request.method),
        path=proxy.path(path),
        query=proxy.query(request.url.query),
        headers=proxy.headers(list(request.headers.items())),
        body=await _body(request, c.cfg.proxy.max_body),
    )
    key = ("origin", out.project, peer, call.service_type)
    generation = c.store.generation
    ref = await run_in_threadpool(
        scopes(request).get,
        key,
        generation,
        lambda: _scope(c, out.project, peer, call.service_type),
    )
    out.peer, out.service_type = ref.name, call.service_type
    if c.federation is None:
        raise PeerError("this agent makes no federation calls")
    client = c.federation.peer(ref)
    try:
        return await run_in_threadpool(
            client.proxy, call, c.cfg.proxy.max_answer, c.cfg.proxy.timeout + 5
        )
    except PeerError as exc:
        raise _from_peer(ref.name, exc) from exc


def _scope(c: AppContext, project: str, peer: str, service_type: str) -> PeerRef:
    with c.store.session() as s:
        return scope.origin_scope(s, project, peer, service_type)


async def _body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise TooLarge(f"body: larger than {limit} bytes (proxy.max_body)", field="body")
    body = await request.body()  # bounded already by the API's own limit (api/limits.py)
    if len(body) > limit:
        raise TooLarge(f"body: larger than {limit} bytes (proxy.max_body)", field="body")
    return body


class ProxyRefused(IntercloudError):
    """The peer's refusal, answered with its status (403, 404, 422, 429, 503, ...)."""

    code = "peer_refused"

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, status=status)
        self.status_code = status


def _from_peer(peer: str, exc: PeerError) -> IntercloudError:
    """A failed call to the peer's agent, as the user sees it: which of the two failed."""
    if exc.status is None or exc.status == 401 or not 400 <= exc.status <= 599:
        if exc.message == f"peer {peer} unreachable":
            return PeerError(f"peer {peer}: its agent is unreachable")
        return PeerError(exc.message.replace(f"peer {peer} refused:", f"peer {peer}:", 1))
    said = exc.message.removeprefix(f"peer {peer} refused: ")
    return ProxyRefused(f"peer {peer}: {said}", exc.status)


for _method in proxy.METHODS:  # one operation per method (each its own OpenAPI id)
    router.add_api_route(
        "/{peer}/{service_type}/{path:path}",
        proxy_call,
        methods=[_method],
        operation_id=f"proxy_{_method.lower()}",
        response_class=Response,
    )
