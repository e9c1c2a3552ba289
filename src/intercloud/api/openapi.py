"""The OpenAPI document, completed in one place for every router: the security schemes (bearer
tokens for the admin and project APIs, the signed headers of federation calls) and, per
operation, the error answers it can give, all with the one error body of api/errors.py.

Which operation needs which credentials is read from its dependencies (api/auth.py), so a
router added later is described without being edited."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi

from intercloud.api import auth
from intercloud.federation import signing

ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "field"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": ["string", "null"]},
            },
        }
    },
}

# every answer may be one of these (the body limit and bad input come before the handler)
COMMON = {
    400: "malformed JSON body",
    404: "no such object (or another project's)",
    409: "conflicts with an existing object or a limit",
    413: "request body over the limit (api/limits.py)",
    422: "invalid input; `field` names it",
}
AUTHENTICATED = {
    401: "missing or invalid credentials",
    403: "credentials without the rights this call needs",
}
# 502/503: a peer or the cloud's own services failed; declared so that a client expects them
UPSTREAM = {
    502: "a peer agent refused or could not be reached",
    503: "the cloud's services (Keystone, Neutron) failed or were unreachable",
}

# the tenant API proxy (api/proxy.py) also answers these; its other answers are the peer's
# service's own, passed through unchanged
PROXY_PREFIX = "/v1/proxy/"
PROXY_ERRORS = {
    429: "the project's proxied calls over [proxy] rate / burst",
    503: "the peer's service (or its Keystone) failed, or the peer's catalog has no such endpoint",
}

# success answers a handler gives besides its route's status_code (JSONResponse with another)
OTHER_SUCCESS = {
    ("post", "/v1/expansions"): {200: "the same expansion existed already: it, unchanged"},
    ("put", "/v1/federation/replicas/{uid}"): {201: "the replica was created"},
}

BEARER: list[dict[str, list[str]]] = [{"bearerToken": []}, {"keystoneToken": []}]
FEDERATION_HEADERS = {
    "peerName": signing.HEADER_PEER,
    "peerTimestamp": signing.HEADER_TIMESTAMP,
    "peerNonce": signing.HEADER_NONCE,
    "peerSignature": signing.HEADER_SIGNATURE,
}
SCHEMES: dict[str, Any] = {
    "bearerToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "the admin token or a project's token (config), or a Keystone token",
    },
    "keystoneToken": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Auth-Token",
        "description": "a Keystone token, as OpenStack clients send it",
    },
    **{
        scheme: {
            "type": "apiKey",
            "in": "header",
            "name": header,
            "description": "federation calls: HMAC-SHA256 request signature "
            "(federation/signing.py); all four headers together",
        }
        for scheme, header in FEDERATION_HEADERS.items()
    },
}
BEARER_CHECKS = {auth.admin, auth.admin_async, auth.project, auth.project_async}
PEER_CHECKS = {auth.peer}


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dep in dependant.dependencies:
        yield dep.call
        yield from _calls(dep)


def _security(dependant: Dependant) -> list[dict[str, list[str]]]:
    calls = set(_calls(dependant))
    if calls & PEER_CHECKS:
        return [{scheme: [] for scheme in FEDERATION_HEADERS}]
    if calls & BEARER_CHECKS:
        return BEARER
    return []


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _success(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {}}}}


def document(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    # FastAPI's own 422 body ({"detail": [...]}) is never sent: api/errors.py answers Error
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Error"] = ERROR_SCHEMA
    components["securitySchemes"] = SCHEMES
    dependants = {
        (route.path_format, method.lower()): route.dependant  # the router's dependencies too
        for route in routing.iter_route_contexts(app.routes)
        if isinstance(route.original_route, routing.APIRoute)
        for method in route.methods or ()
    }
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            security = _security(dependants[(path, method)])
            operation["security"] = security
            errors = {**COMMON, **(AUTHENTICATED if security else {}), **UPSTREAM}
            if path.startswith(PROXY_PREFIX):
                errors |= PROXY_ERRORS
            responses = operation.setdefault("responses", {})
            for status, description in OTHER_SUCCESS.get((method, path), {}).items():
                responses.setdefault(str(status), _success(description))
            for status, description in errors.items():
                responses[str(status)] = _error(description)
    return schema


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
