"""TLS for the agent: its server context (reloadable on SIGHUP), the contexts its clients use,
and checks on PEM certificates that an admin pins for a peer."""

from __future__ import annotations

import hashlib
import re
import ssl
import threading
from pathlib import Path
from typing import Any

from cryptography import x509

from intercloud.errors import Invalid

MIN_VERSION = ssl.TLSVersion.TLSv1_2
MAX_PEM_CHARS = 16384  # a CA or a certificate chain of a few certificates
MAX_PEM_CERTS = 8
_PEM_BLOCK = re.compile(
    r"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----"
)


def check_pem(value: object, field: str = "tls_ca") -> str:
    """PEM certificates only (a CA, or the peer's own certificate), bounded in size. The value
    never appears in the error: an admin who pasted a private key must not see it echoed."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid(
            f"{field}: must be PEM certificates (-----BEGIN CERTIFICATE-----)", field=field
        )
    if len(value) > MAX_PEM_CHARS:
        raise Invalid(f"{field}: at most {MAX_PEM_CHARS} characters of PEM", field=field)
    blocks = _PEM_BLOCK.findall(value)
    if not blocks or _PEM_BLOCK.sub("", value).strip():
        raise Invalid(
            f"{field}: must hold only PEM certificates (-----BEGIN CERTIFICATE----- blocks)",
            field=field,
        )
    if len(blocks) > MAX_PEM_CERTS:
        raise Invalid(f"{field}: at most {MAX_PEM_CERTS} certificates", field=field)
    try:
        for block in blocks:
            x509.load_pem_x509_certificate(block.encode())
    except ValueError as exc:
        raise Invalid(f"{field}: not a valid X.509 certificate ({exc})", field=field) from None
    return "\n".join(b.replace("\r\n", "\n") for b in blocks) + "\n"


def fingerprint(pem: str) -> str:
    """SHA-256 of the first certificate (DER), as openssl prints it: `AB:CD:...`."""
    der = ssl.PEM_cert_to_DER_cert(_PEM_BLOCK.findall(pem)[0])
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


class CertificateNotTrusted(ssl.SSLCertVerificationError):
    """The agent called presented a certificate that does not chain to what we trust."""

    def __str__(self) -> str:  # SSLError's would print the args tuple
        return str(self.args[0]) if self.args else "TLS: certificate not trusted"


class ClientContext(ssl.SSLContext):
    """A client context that names the agent it talks to and its trust anchor when the
    agent's certificate does not verify (httpx's error only says `certificate verify
    failed`); httpx's sync transport makes every connection through wrap_socket."""

    who = "the agent"
    trusted = "system CAs"

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:  # type: ignore[override]
        try:
            return super().wrap_socket(*args, **kwargs)
        except ssl.SSLCertVerificationError as exc:
            raise CertificateNotTrusted(
                f"TLS: certificate of {self.who} not trusted ({self.trusted}): {exc.verify_message}"
            ) from exc


def client_context(pinned: str | None = None, who: str = "the agent") -> ClientContext:
    """For calls to an agent (`who`, for errors): trusting only `pinned` (PEM: a CA or the
    agent's own certificate) when given, else the system's CAs. Hostnames (IP SANs) are
    checked either way; TLS 1.2 at least."""
    ctx = ClientContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and the hostname
    ctx.minimum_version = MIN_VERSION
    ctx.who = who
    if pinned:
        ctx.load_verify_locations(cadata=pinned)
        # a pinned leaf certificate is a trust anchor of its own, whoever issued it
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        ctx.trusted = f"pinned CA sha256 {fingerprint(pinned)}"
    else:
        ctx.load_default_certs()
    return ctx


class ServerTLS:
    """The agent's server context. uvicorn builds its listener from this one context, so
    `reload()` (SIGHUP) switches new handshakes to the new certificate; open connections keep
    theirs."""

    def __init__(self, cert: str, key: str | None) -> None:
        self.cert, self.key = cert, key or None
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = MIN_VERSION
        self._lock = threading.Lock()
        self.reload()

    def reload(self) -> None:
        """Load the files again; a pair that does not load leaves the served one in place
        (load_cert_chain could replace the certificate and then fail on the key)."""
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            key = f" with key {self.key}" if self.key else ""
            raise Invalid(
                f"config agent.tls_cert: cannot load {self.cert}{key} "
                f"({getattr(exc, 'strerror', None) or exc})",
                field="agent.tls_cert",
            ) from None
        with self._lock:
            self.context.load_cert_chain(self.cert, self.key)

    def served_fingerprint(self) -> str:
        return fingerprint(Path(self.cert).read_text())


__all__ = [
    "CertificateNotTrusted",
    "ClientContext",
    "ServerTLS",
    "check_pem",
    "client_context",
    "fingerprint",
]
