"""Exception tree -> JSON error bodies. No traceback ever reaches a client."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from intercloud.errors import IntercloudError

log = logging.getLogger("intercloud.api")


def body(code: str, message: str, field: str | None = None) -> dict:
    return {"error": {"code": code, "message": message, "field": field}}


def install(app: FastAPI) -> None:
    @app.exception_handler(IntercloudError)
    async def _known(_req: Request, exc: IntercloudError) -> JSONResponse:
        return JSONResponse(body(exc.code, exc.message, exc.field), status_code=exc.status_code)

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
    async def _unexpected(_req: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse(
            body("internal", f"internal error: {type(exc).__name__}"), status_code=500
        )
