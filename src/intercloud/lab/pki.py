"""Certificates for the lab (and for tests): one CA per cloud, as independent clouds would
have, and the cloud's agent certificate issued by it, with the cloud's addresses as SANs."""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_DAYS = 30  # a lab lives for hours


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())  # fast to make, small to pin


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _builder(subject: str, issuer: x509.Name, public_key: object) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_DAYS))
    )


@dataclass
class Issued:
    cert: str  # PEM
    key: str  # PEM (PKCS#8, unencrypted)


def make_ca(name: str) -> Issued:
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        _builder(name, subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM).decode(), _pem_key(key).decode())


def issue(ca: Issued, name: str, ips: Sequence[str]) -> Issued:
    """A server certificate for `name` valid for the addresses `ips` (IP SANs)."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert.encode())
    ca_key = serialization.load_pem_private_key(ca.key.encode(), password=None)
    key = _key()
    sans = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in dict.fromkeys(ips)]
    cert = (
        _builder(name, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM).decode(), _pem_key(key).decode())


def write_private(path: Path, text: str) -> None:
    """Create `path` 0600 from the start (never readable by others, even for an instant)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


@dataclass
class CloudPki:
    ca: Path  # the cloud's CA certificate: what peers pin, what INTERCLOUD_CACERT names
    cert: Path
    key: Path


def write_cloud(directory: Path, cloud: str, ips: Sequence[str]) -> CloudPki:
    """A CA for `cloud` and its agent's certificate (for `ips`) in `directory`; keys 0600."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = make_ca(f"intercloud lab CA {cloud}")
    agent = issue(ca, f"agent {cloud}", ips)
    out = CloudPki(directory / "ca.pem", directory / "agent.pem", directory / "agent.key")
    out.ca.write_text(ca.cert)
    write_private(directory / "ca.key", ca.key)
    out.cert.write_text(agent.cert)
    write_private(out.key, agent.key)
    return out


__all__ = ["CloudPki", "Issued", "issue", "make_ca", "write_cloud", "write_private"]
