"""Signed HTTP calls to one peer agent, over one pooled httpx.Client per peer.

A request carries our HMAC signature (signing.py); an answer is believed only with the peer's
signature over it, is read up to MAX_ANSWER bytes, and an error answer becomes a PeerError
carrying the peer's status and its own words, cleaned. Over https:// the peer's certificate must
chain to the PEM pinned for it (or the system's CAs); plain http:// only when the agent itself
serves plain HTTP."""

from __future__ import annotations

import json
import threading
import weakref
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from intercloud import tls
from intercloud.domain import text
from intercloud.errors import PeerError
from intercloud.federation.signing import (
    HEADER_ANSWER_SIGNATURE,
    HEADER_NONCE,
    check_answer,
    sign,
)

# The largest answer read from a peer: a replica view with 4,096 ports is ~300 KB; beyond
# this the peer is misbehaving and its answer is not held in memory.
MAX_ANSWER = 2 * 1024 * 1024
# An idle pooled connection is closed by us before the peer's server closes it (uvicorn: after
# 5 s), so a call never goes out on a connection the peer is closing.
KEEPALIVE_EXPIRY = 2.0


@dataclass(frozen=True)
class PeerRef:
    """Who a peer is and how to reach it: what every call to it needs."""

    name: str
    url: str  # its federation URL, e.g. https://198.18.2.2:8700
    key: str = field(repr=False)  # the HMAC key shared with it (never in a log line)


def _read_bounded(resp: httpx.Response, peer_name: str, limit: int = MAX_ANSWER) -> None:
    """Read the answer's body into `resp`, refusing one larger than `limit`."""
    chunks, size = [], 0
    for chunk in resp.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise PeerError(f"peer {peer_name}: answer larger than {limit} bytes")
        chunks.append(chunk)
    resp._content = b"".join(chunks)  # what resp.content and resp.json() read


class SignatureRefused(PeerError):
    """The peer answered 401 to our signature. Its refusals all look alike (api/auth.py), but
    its unsigned HTTP `Date` header says what its clock reads: `peer_time` (None: no usable
    header), for `intercloud diagnose` to tell a skewed clock from a wrong key."""

    def __init__(self, message: str, *, peer_time: float | None = None) -> None:
        super().__init__(message, status=401)
        self.peer_time = peer_time


def http_date(value: str | None) -> float | None:
    """An HTTP Date header as epoch seconds; None unless it is one (from outside: hostile)."""
    if not value or len(value) > 64 or not value.isascii():
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return when.timestamp()


def _refusal(peer_name: str, status: int, data: Any) -> PeerError:
    """A signed error answer. Always a PeerError (to our callers the peer failed, whatever
    its status says); the peer's own message only when it is a string, cleaned and bounded,
    never its raw answer text (errors.said would quote a non-string message)."""
    error = data.get("error") if isinstance(data, dict) else None
    said = error.get("message") if isinstance(error, dict) else None
    message = text.clean(said, 300) if isinstance(said, str) else f"HTTP {status}"
    return PeerError(f"peer {peer_name} refused: {message}", status=status)


class Channel:
    """Signed calls to one peer. The httpx.Client (its connection pool and TLS context) is
    made on the first call, so a misconfigured peer fails its calls, not its construction:
    making a TLS context loads certificates (~20 ms holding the GIL, measured), once per
    peer and pinned PEM instead of once per call."""

    def __init__(
        self,
        local_name: str,
        peer: PeerRef,
        *,
        pem: str | None = None,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        plain_http: bool = False,
    ) -> None:
        self.local_name = local_name
        self.peer = peer
        self.pem = pem  # the PEM its certificate must chain to (None: the system's CAs)
        self.timeout = timeout
        self.transport = transport
        self.plain_http = plain_http
        self._http: httpx.Client | None = None
        self._closing: weakref.finalize | None = None
        self._lock = threading.Lock()

    def _client(self) -> httpx.Client:
        url, name = self.peer.url, self.peer.name
        if not url.startswith("https://") and not self.plain_http:
            raise PeerError(
                f"peer {name}: federation URL {url} is not https:// (plain HTTP only "
                "when this agent runs with agent.plain_http = true)"
            )
        with self._lock:
            if self._http is None:
                verify: Any = True  # unused over plain HTTP or an in-process transport
                if url.startswith("https://") and self.transport is None:
                    verify = tls.client_context(self.pem, who=f"peer {name}")
                self._http = httpx.Client(
                    timeout=self.timeout,
                    transport=self.transport,
                    verify=verify,
                    limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY),
                )
                # closed with the channel if nobody closed it (a Federation replaced whole)
                self._closing = weakref.finalize(self, self._http.close)
            return self._http

    def close(self) -> None:
        with self._lock:
            if self._closing is not None:
                self._closing()  # closes the client, once
            self._http, self._closing = None, None

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        timeout: float | None = None,
        limit: int = MAX_ANSWER,
    ) -> Any:
        """One signed call; the decoded answer (None for 204), read up to `limit` bytes. The
        typed calls (peers.py) are made of this; tests use it to send what a misbehaving peer
        would."""
        name, key = self.peer.name, self.peer.key
        payload = b"" if body is None else json.dumps(body).encode()
        headers = sign(self.local_name, name, key, method, path, payload)
        headers["Content-Type"] = "application/json"
        try:
            wait = self.timeout if timeout is None else timeout
            client = self._client()
            with client.stream(
                method, self.peer.url + path, content=payload, headers=headers, timeout=wait
            ) as resp:
                _read_bounded(resp, name, limit)
        except httpx.HTTPError as exc:
            detail = text.clean(f"{self.peer.url}: {exc}", 300)  # the admin's; users see no URL
            raise PeerError(f"peer {name} unreachable", detail=detail) from exc
        return self._answer(resp, headers[HEADER_NONCE])

    def _answer(self, resp: httpx.Response, nonce: str) -> Any:
        name = self.peer.name
        if resp.status_code == 401:
            # a refusal of our signature cannot be signed (the peer may not know our key)
            raise SignatureRefused(
                f"peer {name} refused our signature (check the keys and both clocks)",
                peer_time=http_date(resp.headers.get("date")),
            )
        authentic = check_answer(
            self.peer.key,
            name,
            self.local_name,
            nonce,
            resp.status_code,
            resp.content,
            resp.headers.get(HEADER_ANSWER_SIGNATURE),
        )
        if not authentic:
            # Nothing in it is believed, a 404 (replica gone) no more than a 200: no status is
            # passed on. An unsigned error may be honest (a 413 or 500 comes before or outside
            # the signing), so it is named by its status only.
            unsigned = HEADER_ANSWER_SIGNATURE not in resp.headers
            if unsigned and resp.status_code >= 400:
                raise PeerError(f"peer {name} refused: HTTP {resp.status_code} (unsigned)")
            raise PeerError(f"peer {name}: answer not authenticated (bad or no signature)")
        if resp.status_code == 204:
            return None
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.status_code >= 400:
            raise _refusal(name, resp.status_code, data)
        return data
