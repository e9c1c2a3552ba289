"""HMAC signatures of federation requests *and* answers. Pure functions; the nonce store lives
with the caller.

A request's signature covers the method, the path, the canonical query string, both agents'
names (so a request to one agent cannot be replayed to another that shares the key), the time,
a nonce and the body. An answer's signature covers its status, its body, both names and the
nonce of the request it answers, so a forged or replayed answer is refused even where TLS is
off. Both use the per-peer key; a version tag in each message keeps the two kinds apart."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from urllib.parse import parse_qsl, urlencode

HEADER_PEER = "X-Intercloud-Peer"
HEADER_TIMESTAMP = "X-Intercloud-Timestamp"
HEADER_NONCE = "X-Intercloud-Nonce"
HEADER_SIGNATURE = "X-Intercloud-Signature"
HEADER_ANSWER_SIGNATURE = "X-Intercloud-Answer-Signature"
MAX_SKEW_SECONDS = 300
_REQUEST_TAG = "intercloud-request-v2"
_ANSWER_TAG = "intercloud-answer-v1"


def canonical_query(query: str) -> str:
    """The query string as both sides sign it: pairs decoded, sorted, encoded again."""
    return urlencode(sorted(parse_qsl(query, keep_blank_values=True)))


def _mac(key: str, *parts: str) -> str:
    return hmac.new(key.encode(), "\n".join(parts).encode(), hashlib.sha256).hexdigest()


def signature(
    key: str,
    method: str,
    path: str,
    query: str,
    sender: str,
    receiver: str,
    timestamp: str,
    nonce: str,
    body: bytes,
) -> str:
    return _mac(
        key,
        _REQUEST_TAG,
        method.upper(),
        path,
        canonical_query(query),
        sender,
        receiver,
        timestamp,
        nonce,
        hashlib.sha256(body).hexdigest(),
    )


def sign(
    sender: str,
    receiver: str,
    key: str,
    method: str,
    target: str,
    body: bytes,
    now: float | None = None,
) -> dict[str, str]:
    """Headers for a request from `sender` to `receiver`; `target` is the path with its query
    string, if any (`/v1/federation/x?a=1`)."""
    path, _, query = target.partition("?")
    timestamp = str(int(time.time() if now is None else now))
    nonce = secrets.token_hex(16)
    return {
        HEADER_PEER: sender,
        HEADER_TIMESTAMP: timestamp,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: signature(
            key, method, path, query, sender, receiver, timestamp, nonce, body
        ),
    }


def check(
    key: str,
    method: str,
    path: str,
    query: str,
    sender: str,
    receiver: str,
    body: bytes,
    timestamp: str,
    nonce: str,
    sig: str,
    now: float | None = None,
) -> str | None:
    """None if the request is authentic and fresh, else the reason it is not (for the log:
    the caller answers every refusal alike, so a prober learns nothing from the difference)."""
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return "bad timestamp"
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > MAX_SKEW_SECONDS:
        return "timestamp outside the allowed window"
    if not valid_nonce(nonce):
        return "bad nonce"
    expected = signature(key, method, path, query, sender, receiver, timestamp, nonce, body)
    if not hmac.compare_digest(expected, sig):
        return "bad signature"
    return None


def valid_nonce(nonce: str) -> bool:
    return 16 <= len(nonce) <= 64 and all(c in "0123456789abcdef" for c in nonce)


def answer_signature(
    key: str, responder: str, requester: str, request_nonce: str, status: int, body: bytes
) -> str:
    return _mac(
        key,
        _ANSWER_TAG,
        str(status),
        responder,
        requester,
        request_nonce,
        hashlib.sha256(body).hexdigest(),
    )


def check_answer(
    key: str,
    responder: str,
    requester: str,
    request_nonce: str,
    status: int,
    body: bytes,
    sig: str | None,
) -> bool:
    if not sig:
        return False
    expected = answer_signature(key, responder, requester, request_nonce, status, body)
    return hmac.compare_digest(expected, sig)
