"""One exception tree for the whole agent; the REST layer maps it to status codes, the CLI
to one line.

    IntercloudError
    ├── Invalid        bad input (HTTP 422); names the field
    ├── NotFound       unknown object, or another project's (HTTP 404)
    ├── Conflict       duplicate name, VNI in use, limit reached (HTTP 409)
    ├── Unauthorized   missing or wrong credentials (HTTP 401)
    ├── Forbidden      authenticated but outside the caller's rights (HTTP 403)
    ├── TooLarge       a request body over its limit (HTTP 413)
    ├── RateLimited    too many calls of one project in a short time (HTTP 429)
    ├── PeerError      a peer agent refused or could not be reached
    ├── CloudError     the cloud's own services (Keystone, Neutron) failed or were unreachable
    ├── Fenced         a gateway that is no longer active tried to write (HTTP 503, HA)
    └── DriverError    the host (kernel, daemon) refused an operation

`status_code` is what our API answers for an error of that class. An error made from an HTTP
answer carries that answer's status in `status` (None for errors raised here): `from_answer`
maps our agent's answers for the CLI's client and the lab; a peer agent's refusal is always a
PeerError (the peer refused, whatever its status: federation/transport.py), with its `status`.
"""

from __future__ import annotations

from typing import Any


class IntercloudError(Exception):
    status_code = 500
    code = "error"

    def __init__(
        self, message: str, *, field: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status  # the HTTP status of the answer this error was made from


class Invalid(IntercloudError):
    status_code = 422
    code = "invalid"


class NotFound(IntercloudError):
    status_code = 404
    code = "not_found"


class Conflict(IntercloudError):
    status_code = 409
    code = "conflict"


class Unauthorized(IntercloudError):
    status_code = 401
    code = "unauthorized"


class Forbidden(IntercloudError):
    status_code = 403
    code = "forbidden"


class TooLarge(IntercloudError):
    status_code = 413
    code = "too_large"


class RateLimited(IntercloudError):
    status_code = 429
    code = "rate_limited"


class PeerError(IntercloudError):
    status_code = 502
    code = "peer_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        field: str | None = None,
        detail: str = "",
    ):
        super().__init__(message, field=field, status=status)
        self.detail = detail  # for the administrator (the link's status), not for users


class CloudError(IntercloudError):
    status_code = 503
    code = "cloud_unavailable"


class Fenced(IntercloudError):
    """Gateway HA: a write of a gateway whose lease (token) is no longer the cloud's active
    one; nothing of it was committed. `active` is the gateway holding the lease (None: none)."""

    status_code = 503
    code = "standby"

    def __init__(self, message: str, *, active: str | None = None) -> None:
        super().__init__(message)
        self.active = active


class DriverError(IntercloudError):
    status_code = 500
    code = "driver_error"


_BY_STATUS: dict[int, type[IntercloudError]] = {
    400: Invalid,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: Invalid,
    502: PeerError,
}


def said(body: Any) -> tuple[str | None, str | None]:
    """(message, field) of an error answer of ours (`{"error": {"message", "field"}}`, or a
    framework's `{"detail": ...}`); None where the body says nothing usable."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        message = err.get("message") or err.get("code")
        field = err.get("field")
        return (str(message) if message else None), (field if isinstance(field, str) else None)
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"]), None
    return None, None


def from_answer(status: int, message: str, *, field: str | None = None) -> IntercloudError:
    """The exception for an HTTP error answer: the class its status maps to (IntercloudError
    for the others), carrying `message`, `field` and `status`. The one mapping from answers to
    this tree, used by every HTTP client of the project."""
    cls = _BY_STATUS.get(status, IntercloudError)
    return cls(message, field=field, status=status)
