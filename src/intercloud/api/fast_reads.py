"""The busiest reads answered before the framework, from the read cache (api/reads.py).

GET /v1/expansions (a project) and the admin's lists of peers, links and agreements are
answered from JSON kept until the store's next write. Going through FastAPI (its middleware,
its router's match over every route, dependencies, exception handlers) cost 130-170 us of the
event loop per call here, where the answer itself is a dictionary lookup: under 50 clients the
event loop, one thread, was the bottleneck and its queue the reads' latency (their p99 equal
to that of an unauthenticated 401, which touches no database).

Asked first by the application (api/app.py `App`), before any middleware: it answers only a
plain GET of one of those paths (no query, no body) by a caller the cloud driver authenticates
from memory, with the right role, whose view is in the cache and current. Anything else (no or
a bad token, another role, a view to build after a write, a Keystone token) goes to the
application, which answers as it always did: the fast path never decides a refusal and never
serves a view older than the last write.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from starlette.types import Scope, Send

from intercloud.api.context import AppContext, Caller
from intercloud.api.reads import ReadCache


def _admin(key: str) -> Callable[[Caller], Hashable | None]:
    return lambda caller: ("admin", key) if caller.admin else None


def _project_expansions(caller: Caller) -> Hashable | None:
    return None if caller.project is None else ("expansions", caller.project)


# path -> the cache key of its view for a caller (None: not this caller's to read here). The
# keys are those the handlers use (api/admin.py `_cached`, api/user.py `list_expansions`).
VIEWS: dict[str, Callable[[Caller], Hashable | None]] = {
    "/v1/expansions": _project_expansions,
    "/v1/peers": _admin("peers"),
    "/v1/links": _admin("links"),
    "/v1/agreements": _admin("agreements"),
}


def bearer(headers: list[tuple[bytes, bytes]]) -> str:
    """The token of `Authorization: Bearer` or else of `X-Auth-Token` ("" if none), as
    api/auth.py reads it."""
    auth = other = b""
    for name, value in headers:
        lname = name.lower()
        if lname == b"authorization":
            auth = value
        elif lname == b"x-auth-token":
            other = value
    scheme, _, token = auth.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not token:
        token = other.decode("latin-1")
    return token.strip()


def _plain_get(scope: Scope) -> bool:
    """A GET without query and without a body (a body would be BodyLimit's to judge)."""
    if scope["type"] != "http" or scope["method"] != "GET" or scope["query_string"]:
        return False
    for name, value in scope["headers"]:
        lname = name.lower()
        if lname == b"transfer-encoding" or (lname == b"content-length" and value != b"0"):
            return False
    return True


class FastReads:
    def __init__(self, ctx: AppContext, reads: ReadCache) -> None:
        self.ctx = ctx
        self.reads = reads
        self.served = 0  # answers given here (the tests' proof that the path was taken)

    async def answer(self, scope: Scope, send: Send) -> bool:
        """Answered here (True), or the application's to answer (False)."""
        started = time.perf_counter()
        body = self._cached(scope)
        if body is None:
            return False
        head = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": head})
        await send({"type": "http.response.body", "body": body, "more_body": False})
        self.served += 1
        self.ctx.metrics.requested(scope["path"], "GET", 200, time.perf_counter() - started)
        return True

    def _cached(self, scope: Scope) -> bytes | None:
        """The answer if this request may be answered here, else None."""
        view = VIEWS.get(scope.get("path", "")) if scope["type"] == "http" else None
        if view is None or not _plain_get(scope) or not self.ctx.cloud.authenticates_in_memory:
            return None
        token = bearer(scope["headers"])
        caller = self.ctx.cloud.authenticate(token) if token else None
        key = view(caller) if caller is not None else None
        return None if key is None else self.reads.cached(key)


__all__ = ["VIEWS", "FastReads", "bearer"]
