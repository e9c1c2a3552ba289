"""An httpx transport that runs an ASGI app in its own thread and hands its answer's body on
piece by piece as the app sends it (the test client collects whole answers): what a real
server does, so that a test can see a proxied answer stream through both agents."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx

_END = object()


class ThreadedASGI(httpx.BaseTransport):
    def __init__(self, app: Any, tamper: Callable[[int, bytes], bytes] | None = None) -> None:
        self.app = app
        self.tamper = tamper  # (offset of the piece in the body, piece) -> what is sent
        self.pieces: list[int] = []  # the sizes of the body's pieces as the app sent them

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        messages: queue.Queue[Any] = queue.Queue(maxsize=4)  # the app waits for its reader
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "server": (request.url.host, request.url.port or 80),
            "client": ("198.18.0.1", 40000),
        }
        received = False

        async def receive() -> dict[str, Any]:
            nonlocal received
            if not received:
                received = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the client never goes away first
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            messages.put(message)

        def run() -> None:
            try:
                asyncio.run(self.app(scope, receive, send))
            except BaseException as exc:  # handed to the reader
                messages.put(exc)
            messages.put(_END)

        threading.Thread(target=run, daemon=True).start()
        start = messages.get(timeout=30)
        if isinstance(start, BaseException):
            raise httpx.RemoteProtocolError(f"server error: {start!r}", request=request)
        return httpx.Response(
            start["status"], headers=start.get("headers", []), stream=_Body(self, messages)
        )


class _Body(httpx.SyncByteStream):
    def __init__(self, transport: ThreadedASGI, messages: queue.Queue[Any]) -> None:
        self.transport = transport
        self.messages = messages

    def __iter__(self) -> Iterator[bytes]:
        offset = 0
        while True:
            m = self.messages.get(timeout=30)
            if m is _END or isinstance(m, BaseException):
                # what a client sees of a server that closes before the end of its answer
                raise httpx.RemoteProtocolError("peer closed connection mid-answer")
            piece = m.get("body", b"")
            self.transport.pieces.append(len(piece))
            if self.transport.tamper is not None:
                piece = self.transport.tamper(offset, piece)
            offset += len(piece)
            if piece:
                yield piece
            if not m.get("more_body", False):
                return
