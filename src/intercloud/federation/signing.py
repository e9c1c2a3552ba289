"""HMAC request signing. Pure functions; the nonce store lives with the caller."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

HEADER_PEER = "X-Intercloud-Peer"
HEADER_TIMESTAMP = "X-Intercloud-Timestamp"
HEADER_NONCE = "X-Intercloud-Nonce"
HEADER_SIGNATURE = "X-Intercloud-Signature"
MAX_SKEW_SECONDS = 300


def signature(key: str, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    digest = hashlib.sha256(body).hexdigest()
    message = "\n".join([method.upper(), path, timestamp, nonce, digest]).encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def sign(
    sender: str, key: str, method: str, path: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    nonce = secrets.token_hex(16)
    return {
        HEADER_PEER: sender,
        HEADER_TIMESTAMP: timestamp,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: signature(key, method, path, timestamp, nonce, body),
    }


def check(
    key: str,
    method: str,
    path: str,
    body: bytes,
    timestamp: str,
    nonce: str,
    sig: str,
    now: float | None = None,
) -> str | None:
    """None if the request is authentic and fresh, else the reason it is not."""
    try:
        ts = int(timestamp)
    except ValueError:
        return "bad timestamp"
    current = time.time() if now is None else now
    if abs(current - ts) > MAX_SKEW_SECONDS:
        return "timestamp outside the allowed window"
    if not 16 <= len(nonce) <= 64 or not all(c in "0123456789abcdef" for c in nonce):
        return "bad nonce"
    expected = signature(key, method, path, timestamp, nonce, body)
    if not hmac.compare_digest(expected, sig):
        return "bad signature"
    return None
