"""API request latency by route template (`/v1/expansions/{uid}`, never the raw path: its
label set stays bounded), method and status, into the agent's metrics (metrics.py)."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from intercloud.metrics import Metrics

UNMATCHED = "unmatched"  # a path no route has (404 before any handler), whatever it was


class RequestMetrics:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", UNMATCHED)  # the router sets it
            seconds = time.perf_counter() - started
            self.metrics.requested(route, scope["method"], status, seconds)
