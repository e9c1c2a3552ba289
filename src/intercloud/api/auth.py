"""Authentication dependencies: bearer tokens (admin, project) and signed federation calls."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from fastapi import Request
from sqlalchemy import delete, select
from starlette.concurrency import run_in_threadpool

from intercloud.api.context import AppContext, Caller
from intercloud.api.reads import ReadCache
from intercloud.domain import text
from intercloud.errors import Conflict, Forbidden, Unauthorized
from intercloud.federation import signing
from intercloud.store import models as m

T = TypeVar("T")
log = logging.getLogger("intercloud.api")


def ctx(request: Request) -> AppContext:
    return request.app.state.ctx


def reads(request: Request) -> ReadCache:
    return request.app.state.reads


def _principal(request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        # OpenStack clients send Keystone tokens this way
        token = request.headers.get("x-auth-token", "")
    if not token.strip():
        raise Unauthorized(
            "missing token (Authorization: Bearer <token>, or X-Auth-Token: <token>)"
        )
    principal = ctx(request).cloud.authenticate(token.strip())
    if principal is None:
        raise Unauthorized("invalid token")
    return principal


def admin(request: Request) -> Caller:
    principal = _principal(request)
    if not principal.admin:
        raise Forbidden("this call needs the admin token")
    return principal


def project(request: Request) -> str:
    principal = _principal(request)
    if principal.project is None:
        raise Forbidden("this call needs a project token, not the admin token")
    return principal.project


async def _on_loop(request: Request, check: Callable[[Request], T]) -> T:
    """`check` for handlers that run on the event loop (api/reads.py): there when the cloud
    driver authenticates from memory, else in a worker thread (e.g. Keystone over HTTP)."""
    if ctx(request).cloud.authenticates_in_memory:
        return check(request)
    return await run_in_threadpool(check, request)


async def admin_async(request: Request) -> Caller:
    return await _on_loop(request, admin)


async def project_async(request: Request) -> str:
    return await _on_loop(request, project)


# Every refusal of a federation call answers alike: which check failed (unknown peer, wrong key,
# stale, bad nonce, replay) goes to the log only, so a prober learns nothing from the answer.
REFUSED = "federation call not authenticated"
FEDERATION_STATE = "federation_peer"  # request.state key: (peer, key, nonce) for the answer


async def peer(request: Request) -> str:
    """The authenticated peer's name. Checks the HMAC signature (method, path, query, both
    agents' names, time, nonce, body), the clock window and that the nonce was not seen before
    (stored, so replays fail across restarts too)."""
    headers = request.headers
    name = headers.get(signing.HEADER_PEER)
    ts = headers.get(signing.HEADER_TIMESTAMP)
    nonce = headers.get(signing.HEADER_NONCE)
    sig = headers.get(signing.HEADER_SIGNATURE)
    if not (name and ts and nonce and sig):
        raise Unauthorized(REFUSED + " (no signature headers)")
    body = await request.body()
    # the database work (a lookup, a commit that waits for the disk) goes to a worker thread:
    # on the event loop it stopped every other request for its duration
    return await run_in_threadpool(_check_peer, request, name, ts, nonce, sig, body)


def _refuse(name: str, why: str) -> Unauthorized:
    log.warning("federation call refused (peer %s): %s", text.clean(name, 64), why)
    return Unauthorized(REFUSED)


def _check_peer(request: Request, name: str, ts: str, nonce: str, sig: str, body: bytes) -> str:
    c = ctx(request)
    with c.store.session() as s:
        row = s.scalar(select(m.Peer).where(m.Peer.name == name))
        key = row.key if row else None
        peer_id = row.id if row else None
    if key is None:
        raise _refuse(name, "unknown peer")
    why = signing.check(
        key,
        request.method,
        request.url.path,
        request.url.query,
        name,
        c.cfg.agent.name,
        body,
        ts,
        nonce,
        sig,
    )
    if why:
        raise _refuse(name, why)
    try:
        # any gateway records the nonces it saw, standby too (store/fence.py): a replay
        # protection, not the cloud's state
        with c.store.session(shown=False, fenced=False) as s:
            s.add(m.Nonce(peer_id=peer_id, nonce=nonce))
            horizon = datetime.now(UTC) - timedelta(seconds=2 * signing.MAX_SKEW_SECONDS)
            s.execute(delete(m.Nonce).where(m.Nonce.seen_at < horizon))
    except Conflict as exc:
        raise _refuse(name, "replayed (nonce already seen)") from exc
    # what the answer's signature needs (api/answer_signing.py)
    setattr(request.state, FEDERATION_STATE, (name, key, nonce))
    return name
