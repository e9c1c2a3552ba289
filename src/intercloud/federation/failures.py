"""What kind of failure a federation call met (for `intercloud diagnose`): the transport's
exception chain read into one word of domain/diagnosis.API_FAILURES."""

from __future__ import annotations

import ssl

import httpx

from intercloud import tls
from intercloud.errors import PeerError
from intercloud.federation.answers import BadAnswer
from intercloud.federation.transport import SignatureRefused


def kind(exc: PeerError) -> str:
    """refused | timeout | certificate | tls | signature | bad_answer | error."""
    if isinstance(exc, SignatureRefused):
        return "signature"
    if isinstance(exc, BadAnswer):
        return "bad_answer"
    seen: set[int] = set()
    cur: BaseException | None = exc.__cause__
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        found = _kind_of(cur)
        if found:
            return found
        cur = cur.__cause__ or cur.__context__
    return "error"


def _kind_of(exc: BaseException) -> str:
    if isinstance(exc, tls.CertificateNotTrusted | ssl.SSLCertVerificationError):
        return "certificate"
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ssl.SSLError):
        return "tls"
    return ""
