"""The HTTP API: admin, user and federation routers, versioned under /v1."""

from intercloud.api.app import create_app

__all__ = ["create_app"]
