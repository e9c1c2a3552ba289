"""Calls to a peer agent's federation API."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable
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


def _read_bounded(resp: httpx.Response, peer_name: str) -> None:
    """Read the answer's body into `resp`, refusing one larger than MAX_ANSWER."""
    chunks, size = [], 0
    for chunk in resp.iter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER:
            raise PeerError(f"peer {peer_name}: answer larger than {MAX_ANSWER} bytes")
        chunks.append(chunk)
    resp._content = b"".join(chunks)  # what resp.content and resp.json() read


class FederationClient:
    def __init__(
        self,
        local_name: str,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        *,
        pinned: Callable[[str], str | None] | None = None,
        plain_http: bool = False,
    ) -> None:
        """`pinned(peer)`: the PEM the peer's certificate must chain to, None for the system's
        CAs; `plain_http`: http:// federation URLs are allowed (the agent serves plain HTTP)."""
        self.local_name = local_name
        self.timeout = timeout
        self.transport = transport
        self.pinned = pinned
        self.plain_http = plain_http
        self._ssl: dict[tuple[str, str | None], ssl.SSLContext] = {}
        self._ssl_lock = threading.Lock()

    def _ssl_context(self, peer_name: str, url: str) -> ssl.SSLContext | bool:
        """The TLS context for calls to `peer_name`, one per (peer, pinned PEM) and shared by
        every call: making one loads certificates (~20 ms holding the GIL, measured), which
        each new httpx.Client did; that was 40 % of a reconcile pass."""
        if not url.startswith("https://"):
            if not self.plain_http:
                raise PeerError(
                    f"peer {peer_name}: federation URL {url} is not https:// (plain HTTP only "
                    "when this agent runs with agent.plain_http = true)"
                )
            return True  # unused over plain HTTP
        if self.transport is not None:
            return True  # in-process transport: no TLS to set up
        pem = self.pinned(peer_name) if self.pinned else None
        with self._ssl_lock:
            ctx = self._ssl.get((peer_name, pem))
            if ctx is None:
                for key in [k for k in self._ssl if k[0] == peer_name]:
                    del self._ssl[key]  # a re-pinned peer: drop its old context
                ctx = tls.client_context(pem, who=f"peer {peer_name}")
                self._ssl[(peer_name, pem)] = ctx
            return ctx

    def call(
        self,
        peer_name: str,
        url: str,
        key: str,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        payload = b"" if body is None else json.dumps(body).encode()
        headers = sign(self.local_name, peer_name, key, method, path, payload)
        headers["Content-Type"] = "application/json"
        try:
            wait = self.timeout if timeout is None else timeout
            verify = self._ssl_context(peer_name, url)
            with (
                httpx.Client(timeout=wait, transport=self.transport, verify=verify) as client,
                client.stream(method, url + path, content=payload, headers=headers) as resp,
            ):
                _read_bounded(resp, peer_name)
        except httpx.HTTPError as exc:
            detail = text.clean(f"{url}: {exc}", 300)  # the admin's; users see no URL
            raise PeerError(f"peer {peer_name} unreachable", detail=detail) from exc
        if resp.status_code == 401:
            # a refusal of our signature cannot be signed (the peer may not know our key)
            raise PeerError(f"peer {peer_name} refused our signature (check the keys)", status=401)
        authentic = check_answer(
            key,
            peer_name,
            self.local_name,
            headers[HEADER_NONCE],
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
                raise PeerError(f"peer {peer_name} refused: HTTP {resp.status_code} (unsigned)")
            raise PeerError(f"peer {peer_name}: answer not authenticated (bad or no signature)")
        if resp.status_code == 204:
            return None
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.status_code >= 400:
            error = data.get("error") if isinstance(data, dict) else None
            said = error.get("message") if isinstance(error, dict) else None
            # the peer's own words, cleaned and bounded; never its raw answer text
            message = text.clean(said, 300) if isinstance(said, str) else f"HTTP {resp.status_code}"
            raise PeerError(f"peer {peer_name} refused: {message}", status=resp.status_code)
        return data
