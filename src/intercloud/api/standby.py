"""Gateway HA: a standby gateway serves reads and refuses writes with 503 naming the active
gateway (docs/ha.md). A write is any method but GET, HEAD and OPTIONS. We answer rather than
proxy: the client (CLI, a peer) retries at the cloud's address, which the active holds."""

from __future__ import annotations

import json

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

from intercloud.api.context import HaHandle

READS = frozenset({"GET", "HEAD", "OPTIONS"})


class StandbyRefusesWrites:
    def __init__(self, app: ASGIApp, ha: HaHandle | None) -> None:
        self.app = app
        self.ha = ha

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ha = self.ha
        if ha is None or scope["type"] != "http" or scope["method"] in READS or ha.active():
            await self.app(scope, receive, send)
            return
        active = await anyio.to_thread.run_sync(ha.holder)  # a database read
        message = (
            f"gateway {ha.gateway} is standby: send writes to the active gateway "
            f"({active or 'none at the moment'}) at the cloud's address"
        )
        body = json.dumps(
            {"error": {"code": "standby", "message": message, "field": None}, "active": active}
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", b"1"),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
