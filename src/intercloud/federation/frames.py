"""A proxied answer as a stream of signed frames, so that it can be passed on as it arrives
without believing a byte the peer did not sign (api/federation_proxy.py writes it,
PeerClient.proxy reads it).

A frame is `kind (1 byte) | length (4 bytes, big-endian) | payload | mac (32 bytes)`. The kinds
come in this order: one HEAD (JSON `{"status": int, "headers": [[name, value], ...]}`), any
number of DATA (1 to CHUNK bytes of the body), one END (the body's total length, 8 bytes,
big-endian), then nothing. Each mac is an HMAC-SHA256, with the link's federation key, over the
previous frame's mac, the kind, the length and the payload; the first frame's "previous mac" is
an HMAC over a version tag, both agents' names, the request's nonce and its signature. So a
frame forged, altered, dropped, reordered, replayed from another answer or cut off (no END, or
an END whose length differs) fails at the first frame that shows it."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

from intercloud.errors import PeerError

MEDIA_TYPE = "application/x-intercloud-frames"
HEAD, DATA, END = b"H", b"D", b"E"
CHUNK = 64 * 1024  # the largest DATA payload
MAX_HEAD = 16 * 1024  # the largest HEAD payload (status and the headers that matter)
_PREFIX = 5  # kind and length
_MAC = 32
_TAG = "intercloud-stream-v1"


class BrokenStream(PeerError):
    """A frame that fails verification, or a stream cut before its END."""


def _seed(key: str, responder: str, requester: str, nonce: str, request_sig: str) -> bytes:
    parts = "\n".join((_TAG, responder, requester, nonce, request_sig))
    return hmac.new(key.encode(), parts.encode(), hashlib.sha256).digest()


def _mac(key: str, previous: bytes, prefix: bytes, payload: bytes) -> bytes:
    return hmac.new(key.encode(), previous + prefix + payload, hashlib.sha256).digest()


class Writer:
    """The frames of one answer, each chained to the one before."""

    def __init__(
        self, key: str, responder: str, requester: str, nonce: str, request_sig: str
    ) -> None:
        self.key = key
        self._previous = _seed(key, responder, requester, nonce, request_sig)
        self.total = 0

    def _frame(self, kind: bytes, payload: bytes) -> bytes:
        prefix = kind + len(payload).to_bytes(4, "big")
        self._previous = _mac(self.key, self._previous, prefix, payload)
        return prefix + payload + self._previous

    def head(self, status: int, headers: Iterable[tuple[str, str]]) -> bytes:
        payload = json.dumps({"status": status, "headers": [list(h) for h in headers]}).encode()
        return self._frame(HEAD, payload)

    def data(self, chunk: bytes) -> Iterator[bytes]:
        """The DATA frames of `chunk` (none for b""), each at most CHUNK bytes of it."""
        for at in range(0, len(chunk), CHUNK):
            piece = chunk[at : at + CHUNK]
            self.total += len(piece)
            yield self._frame(DATA, piece)

    def end(self) -> bytes:
        return self._frame(END, self.total.to_bytes(8, "big"))


class Reader:
    """Verifies the frames of one answer as they arrive from `source` (bytes cut anywhere),
    holding at most one frame and one piece of `source`; the body at most `limit` bytes and
    all of it before `deadline` (time.monotonic()). Every failure is a BrokenStream."""

    def __init__(
        self,
        source: Iterable[bytes],
        key: str,
        responder: str,
        requester: str,
        nonce: str,
        request_sig: str,
        *,
        limit: int,
        deadline: float,
    ) -> None:
        self._source = iter(source)
        self.key = key
        self.peer = responder
        self.limit = limit
        self.deadline = deadline
        self._previous = _seed(key, responder, requester, nonce, request_sig)
        self._buffer = bytearray()
        self.total = 0

    def _broken(self, why: str) -> BrokenStream:
        return BrokenStream(f"peer {self.peer}: answer stream broken ({why})")

    def _fill(self, size: int) -> bool:
        """At least `size` bytes buffered; False if the source ended first."""
        while len(self._buffer) < size:
            if time.monotonic() > self.deadline:
                raise self._broken("took longer than the call's timeout")
            piece = next(self._source, None)
            if piece is None:
                return False
            self._buffer += piece
        return True

    def _frame(self) -> tuple[bytes, bytes]:
        if not self._fill(_PREFIX):
            raise self._broken("cut before its end")
        prefix = bytes(self._buffer[:_PREFIX])
        kind, length = prefix[:1], int.from_bytes(prefix[1:], "big")
        largest = {HEAD: MAX_HEAD, DATA: CHUNK, END: 8}.get(kind)
        if largest is None or length > largest:
            raise self._broken("bad frame kind or length")
        if not self._fill(_PREFIX + length + _MAC):
            raise self._broken("cut before its end")
        payload = bytes(self._buffer[_PREFIX : _PREFIX + length])
        mac = bytes(self._buffer[_PREFIX + length : _PREFIX + length + _MAC])
        del self._buffer[: _PREFIX + length + _MAC]
        expected = _mac(self.key, self._previous, prefix, payload)
        if not hmac.compare_digest(expected, mac):
            raise self._broken("bad frame signature")
        self._previous = mac
        return kind, payload

    def head(self) -> tuple[Any, Any]:
        """The answer's status and headers as the peer sent them (unchecked values: the
        caller applies domain/proxy.py's rules)."""
        kind, payload = self._frame()
        try:
            data = json.loads(payload) if kind == HEAD else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise self._broken("no head first")
        return data.get("status"), data.get("headers", [])

    def body(self) -> Iterator[bytes]:
        """The body's pieces, each verified before it is given; ends only at a valid END."""
        while True:
            kind, payload = self._frame()
            if kind == END:
                break
            if kind != DATA or not payload:
                raise self._broken("frame out of order")
            self.total += len(payload)
            if self.total > self.limit:
                raise self._broken(f"body larger than {self.limit} bytes")
            yield payload
        if int.from_bytes(payload, "big") != self.total or len(payload) != 8:
            raise self._broken("length at its end differs")
        if self._buffer or self._fill(1):
            raise self._broken("bytes after its end")
