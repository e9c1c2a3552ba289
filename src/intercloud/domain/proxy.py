"""The tenant API proxy's rules, pure: what a proxied call may say (its service type, path,
query, headers) and what an answer may carry back. Both agents apply them: the origin on the
user's request, the peer on the origin's envelope, the origin again on the peer's answer.

A proxied call is relative to the catalog endpoint of its service type in the peer's cloud:
the path is a list of plain segments (no `.` or `..`, no empty segment, no scheme or host, no
percent escapes) so that it can only name something below that endpoint."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from intercloud.errors import Forbidden, Invalid

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
DEFAULT_SERVICES = ("network", "compute")
# Keystone's service types: lower-case words joined by '-' ("network", "block-storage")
_SERVICE_RE = re.compile(r"[a-z][a-z0-9-]{0,31}", re.ASCII)
# a path segment: what OpenStack ids, names of collections and extensions are made of; no
# '%' (the segment is sent as is, never decoded twice), no ':' or '@' (nothing URL-like)
_SEGMENT_RE = re.compile(r"[A-Za-z0-9_.~+,=-]{1,255}", re.ASCII)
MAX_PATH = 1024
MAX_SEGMENTS = 32
MAX_QUERY_PAIRS = 64
MAX_QUERY = 4096
MAX_HEADER_VALUE = 256
# What a client says about its body and the answer it wants; nothing that names a user, a
# token (X-Auth-Token, Authorization), a host or a connection (hop-by-hop) is ever passed on.
REQUEST_HEADERS = (
    "content-type",
    "accept",
    "openstack-api-version",
    "x-openstack-nova-api-version",
)
# What a service says about its answer. Not Location (it names the peer's internal endpoint),
# not Content-Length (ours is computed), not Set-Cookie, not hop-by-hop headers.
ANSWER_HEADERS = (
    "content-type",
    "openstack-api-version",
    "x-openstack-nova-api-version",
    "x-openstack-request-id",
    "x-compute-request-id",
    "retry-after",
    "etag",
    "vary",
)


@dataclass(frozen=True)
class Call:
    """One proxied call, as the origin forwards it and the peer executes it."""

    project: str  # the origin's project (the peer acts in its replica, `<origin>.<project>`)
    service_type: str
    method: str
    path: str  # relative to the service's endpoint, segments joined by '/'
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...] = field(default=())
    body: bytes = b""
    # the rest of the body, when it streams: read after `body`, once; closing it ends the call
    rest: Iterator[bytes] | None = field(default=None, compare=False)


def service_type(value: object, allowed: list[str] | tuple[str, ...] | None = None) -> str:
    if not isinstance(value, str) or not _SERVICE_RE.fullmatch(value):
        raise Invalid(
            "service_type: must be a Keystone service type such as 'network' (lower-case "
            "letters, digits and '-')",
            field="service_type",
        )
    if allowed is not None and value not in allowed:
        raise Forbidden(
            f"service_type: {value!r} is not allowed through the proxy (allowed: "
            f"{', '.join(allowed) or 'none'})",
            field="service_type",
        )
    return value


def service_types(values: object, field_name: str = "proxy_services") -> list[str]:
    """An agreement's allow-list: distinct service types, sorted."""
    if not isinstance(values, list) or len(values) > 32:
        raise Invalid(f"{field_name}: must be a list of at most 32 service types", field=field_name)
    out = set()
    for v in values:
        try:
            out.add(service_type(v))
        except Invalid:
            raise Invalid(
                f"{field_name}: {v!r} is not a Keystone service type (lower-case letters, "
                "digits and '-')",
                field=field_name,
            ) from None
    return sorted(out)


def method(value: object) -> str:
    if value not in METHODS:
        raise Invalid(f"method: must be one of {', '.join(METHODS)}", field="method")
    return str(value)


def path(value: object) -> str:
    """The path below the service's endpoint, checked segment by segment."""
    if not isinstance(value, str) or len(value) > MAX_PATH:
        raise Invalid(f"path: must be at most {MAX_PATH} characters", field="path")
    segments = value.split("/")
    if segments and segments[-1] == "":
        segments.pop()  # one trailing '/' (a collection) is harmless
    if len(segments) > MAX_SEGMENTS:
        raise Invalid(f"path: at most {MAX_SEGMENTS} segments", field="path")
    for seg in segments:
        if seg in (".", "..") or not _SEGMENT_RE.fullmatch(seg):
            raise Invalid(
                "path: each segment must be letters, digits, '_', '.', '~', '+', ',', '=' or "
                "'-', never '.' or '..', and no segment may be empty",
                field="path",
            )
    return "/".join(segments)


def _plain(value: str, limit: int) -> bool:
    return len(value) <= limit and value.isascii() and value.isprintable()


def query(raw: str) -> tuple[tuple[str, str], ...]:
    """The query string as (key, value) pairs, in order, repeated keys kept."""
    if len(raw) > MAX_QUERY:
        raise Invalid(f"query: at most {MAX_QUERY} characters", field="query")
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, max_num_fields=MAX_QUERY_PAIRS)
    except ValueError:
        raise Invalid(f"query: at most {MAX_QUERY_PAIRS} parameters", field="query") from None
    return pairs_checked(pairs)


def pairs_checked(pairs: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(pairs, list | tuple) or len(pairs) > MAX_QUERY_PAIRS:
        raise Invalid(f"query: at most {MAX_QUERY_PAIRS} parameters", field="query")
    out = []
    for pair in pairs:
        ok = isinstance(pair, list | tuple) and len(pair) == 2
        ok = ok and all(isinstance(x, str) and _plain(x, 1024) for x in pair)
        if not ok:
            raise Invalid("query: parameters must be printable text", field="query")
        out.append((pair[0], pair[1]))
    return tuple(out)


def headers(
    items: object, allowed: tuple[str, ...] = REQUEST_HEADERS, field_name: str = "headers"
) -> tuple[tuple[str, str], ...]:
    """The headers in `allowed` (names lower-cased), the others dropped; a value that is not
    one printable line is refused (it could split a header)."""
    if not isinstance(items, list | tuple):
        raise Invalid(f"{field_name}: must be a list of [name, value]", field=field_name)
    out: dict[str, str] = {}
    for item in items:
        if not (isinstance(item, list | tuple) and len(item) == 2):
            raise Invalid(f"{field_name}: must be a list of [name, value]", field=field_name)
        name, value = item
        if not isinstance(name, str) or name.lower() not in allowed:
            continue
        if not isinstance(value, str) or not _plain(value, MAX_HEADER_VALUE):
            raise Invalid(
                f"{field_name}: {name.lower()} must be printable ASCII of at most "
                f"{MAX_HEADER_VALUE} characters",
                field=field_name,
            )
        out[name.lower()] = value
    return tuple(sorted(out.items()))


def head(status: object, items: object) -> Answer:
    """A peer's answer's status and headers, checked before anything of it reaches the user
    (its body follows, streamed: Answer.rest)."""
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise Invalid("status: must be an HTTP status from 200 to 599", field="status")
    return Answer(status, headers(items, ANSWER_HEADERS, "headers"))
