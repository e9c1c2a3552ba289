"""Request bodies bounded before anything reads them (authentication included).

An ASGI middleware, outermost: a Content-Length over the limit is answered 413 at once,
without reading the body; a body without Content-Length (chunked) is read here up to the
limit, and answered 413 as soon as it passes it, else handed on as read. An unauthenticated
200 MB POST took the agent from 119 to 478 MB before (issue 13, finding 6).
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from intercloud.api.errors import body as error_body

# The largest legitimate body is a federation ports list of 4,096 [mac, ip] pairs with
# IPv6 addresses of the longest form: 290 KB (tests/unit/test_limits.py measures it).
MAX_BODY = 1024 * 1024


def too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        error_body("too_large", f"request body larger than {limit} bytes", "body"),
        status_code=413,
        # the rest of the body is not wanted: the server closes instead of reading it
        headers={"Connection": "close"},
    )


def _content_length(scope: Scope) -> int | None:
    values = [v for k, v in scope.get("headers", ()) if k.lower() == b"content-length"]
    if len(values) != 1 or not values[0].isdigit():
        return None  # absent or malformed: the body is counted as it comes
    return int(values[0])


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None:
            if length > self.limit:
                await too_large(self.limit)(scope, receive, send)
                return
            await self.app(scope, receive, send)  # the server stops the body at its length
            return
        read: list[Message] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            size += len(message.get("body", b""))
            if size > self.limit:
                await too_large(self.limit)(scope, receive, send)
                return
            read.append(message)
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return read.pop(0) if read else await receive()

        await self.app(scope, replay, send)
