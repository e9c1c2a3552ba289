"""The HTTP API: admin, user and federation routers, versioned under /v1.

`create_app` is imported on first use: FastAPI and the routers' models take ~0.7 s to import,
which a module that needs only `api.context` or `api.auth` does not pay."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from intercloud.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
