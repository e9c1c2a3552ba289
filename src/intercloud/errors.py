"""One exception tree for the whole agent; the REST layer maps it to status codes, the CLI
to one line.

    IntercloudError
    ├── Invalid        bad input (HTTP 422); names the field
    ├── NotFound       unknown object, or another project's (HTTP 404)
    ├── Conflict       duplicate name, VNI in use, limit reached (HTTP 409)
    ├── Unauthorized   missing or wrong credentials (HTTP 401)
    ├── Forbidden      authenticated but outside the caller's rights (HTTP 403)
    ├── PeerError      a peer agent refused or could not be reached
    ├── CloudError     the cloud's own services (Keystone, Neutron) failed or were unreachable
    └── DriverError    the host (kernel, daemon) refused an operation
"""

from __future__ import annotations


class IntercloudError(Exception):
    status_code = 500
    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


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
        super().__init__(message, field=field)
        self.peer_status = status
        self.detail = detail  # for the administrator (the link's status), not for users


class CloudError(IntercloudError):
    status_code = 503
    code = "cloud_unavailable"


class DriverError(IntercloudError):
    status_code = 500
    code = "driver_error"
