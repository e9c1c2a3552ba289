"""Exception tree -> JSON error bodies. No traceback ever reaches a client."""

from __future__ import annotations

import logging
import traceback

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from intercloud.errors import Fenced, IntercloudError
from intercloud.store.db import describe, describe_driver_error

log = logging.getLogger("intercloud.api")


def body(code: str, message: str, field: str | None = None) -> dict:
    return {"error": {"code": code, "message": message, "field": field}}


def install(app: FastAPI) -> None:
    @app.exception_handler(IntercloudError)
    async def _known(_req: Request, exc: IntercloudError) -> JSONResponse:
        return JSONResponse(body(exc.code, exc.message, exc.field), status_code=exc.status_code)

    @app.exception_handler(Fenced)
    async def _fenced(_req: Request, exc: Fenced) -> JSONResponse:
        # the gateway lost its lease during the request: as a standby answers (api/standby.py)
        return JSONResponse(
            {**body(exc.code, exc.message, exc.field), "active": exc.active},
            status_code=exc.status_code,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            return JSONResponse(body("invalid", "malformed JSON body", "body"), status_code=400)
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or "body"
        message = f"{field}: {first.get('msg', 'invalid value')}"
        return JSONResponse(body("invalid", message, field), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else "error"
        return JSONResponse(body(code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(req: Request, exc: Exception) -> JSONResponse:
        return _internal(req.method, req.url.path, exc)

    app.add_middleware(Unexpected)


def _internal(method: str, path: str, exc: BaseException) -> JSONResponse:
    log.error("unexpected error on %s %s\n%s", method, path, _without_values(exc))
    return JSONResponse(body("internal", f"internal error: {type(exc).__name__}"), status_code=500)


class Unexpected:
    """Answers an unexpected exception with a 500 here, below the other middlewares (so a
    federation 500 is signed too). Starlette's own handler for `Exception` answers, then
    raises it again for the server, and uvicorn logs its whole text: a database error's
    included, which can quote a value."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            response = _internal(scope["method"], scope["path"], exc)
            if not started:  # else the answer is cut short: the client sees a broken one
                await response(scope, receive, send)


def _without_values(exc: BaseException) -> str:
    """The traceback of `exc`, for the log. A database error's text is left out (of `exc`
    and of the exceptions it was raised from): besides the statement it holds the
    database's message, which can quote a value (PostgreSQL: 'invalid input syntax ...
    "<value>"', or a DETAIL with the whole failing row, keys included)."""
    parts: list[str] = []
    hidden: set[int] = set()  # the driver's own exceptions under a database error
    seen: BaseException | None = exc
    while seen is not None and len(parts) < 10:  # a chain can loop
        frames = "".join(traceback.format_tb(seen.__traceback__))
        if isinstance(seen, SQLAlchemyError):
            hidden.add(id(getattr(seen, "orig", None)))
            what = describe(seen)
        elif id(seen) in hidden:  # the driver's exception under it: the same text
            what = describe_driver_error(seen)
        else:
            what = "".join(traceback.format_exception_only(seen)).rstrip()
        parts.append(f"Traceback (most recent call last):\n{frames}{what}")
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return "\nThe above exception led to:\n".join(reversed(parts))
