"""IKE and IPsec policies: what the administrator may choose, safe defaults, and the
strongSwan proposal strings they become. Weak choices are refused with the field named."""

from __future__ import annotations

from dataclasses import dataclass

from intercloud.errors import Invalid

AEAD = {"aes128gcm16", "aes256gcm16", "chacha20poly1305"}
ENCRYPTION = AEAD | {"aes128", "aes192", "aes256", "aes128ctr", "aes256ctr"}
INTEGRITY = {"sha256", "sha384", "sha512", "sha1"}
PRF = {"prfsha256", "prfsha384", "prfsha512"}
DH_GROUPS = {
    "ecp256",
    "ecp384",
    "ecp521",
    "curve25519",
    "curve448",
    "modp2048",
    "modp3072",
    "modp4096",
    "modp8192",
}
# Refused outright: broken or too short (DES, 3DES, MD5, modp1024 and below).
WEAK = {
    "des",
    "3des",
    "blowfish",
    "cast128",
    "null",
    "md5",
    "prfmd5",
    "md5_128",
    "modp768",
    "modp1024",
    "modp1024s160",
    "modp1536",
}
MODES = ("transport", "tunnel")
LIFETIME_MIN, LIFETIME_MAX = 5, 86400


def _choices(
    value: object, allowed: set[str], field: str, *, empty_ok: bool = False
) -> tuple[str, ...]:
    if not isinstance(value, list) or (not value and not empty_ok):
        raise Invalid(f"{field}: must be a non-empty list", field=field)
    out = []
    for item in value:
        if not isinstance(item, str):
            raise Invalid(f"{field}: entries must be strings", field=field)
        low = item.lower()
        if low in WEAK:
            raise Invalid(f"{field}: {item!r} is too weak and is refused", field=field)
        if low not in allowed:
            raise Invalid(
                f"{field}: unknown algorithm {item!r} (allowed: {', '.join(sorted(allowed))})",
                field=field,
            )
        out.append(low)
    return tuple(dict.fromkeys(out))


def _lifetime(value: object, field: str) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not LIFETIME_MIN <= value <= LIFETIME_MAX
    ):
        raise Invalid(
            f"{field}: must be an integer from {LIFETIME_MIN} to {LIFETIME_MAX} seconds",
            field=field,
        )
    return value


def _integrity(encryption: tuple[str, ...], integrity: object, field: str) -> tuple[str, ...]:
    chosen = _choices(integrity, INTEGRITY, field, empty_ok=True)
    if not chosen and any(e not in AEAD for e in encryption):
        raise Invalid(
            f"{field}: a non-AEAD encryption algorithm needs an integrity algorithm", field=field
        )
    return chosen


@dataclass(frozen=True)
class IkePolicy:
    name: str = "default"
    version: int = 2
    encryption: tuple[str, ...] = ("aes256gcm16",)
    integrity: tuple[str, ...] = ()
    prf: tuple[str, ...] = ("prfsha256",)
    dh_groups: tuple[str, ...] = ("ecp256", "curve25519")
    lifetime: int = 14400

    def proposals(self) -> tuple[str, ...]:
        """One strongSwan proposal holding every allowed combination."""
        parts = [*self.encryption, *self.integrity, *self.prf, *self.dh_groups]
        return ("-".join(parts),)


@dataclass(frozen=True)
class IpsecPolicy:
    name: str = "default"
    encryption: tuple[str, ...] = ("aes256gcm16",)
    integrity: tuple[str, ...] = ()
    pfs_group: str | None = "ecp256"
    lifetime: int = 3600
    mode: str = "transport"

    def proposals(self) -> tuple[str, ...]:
        parts = [*self.encryption, *self.integrity]
        if self.pfs_group:
            parts.append(self.pfs_group)
        return ("-".join(parts),)


def ike_policy(
    name: str,
    version: object = 2,
    encryption: object = None,
    integrity: object = None,
    prf: object = None,
    dh_groups: object = None,
    lifetime: object = 14400,
) -> IkePolicy:
    d = IkePolicy()
    if version not in (1, 2) or isinstance(version, bool):
        raise Invalid("version: must be 1 or 2 (2 recommended)", field="version")
    enc = _choices(
        list(d.encryption) if encryption is None else encryption, ENCRYPTION, "encryption"
    )
    return IkePolicy(
        name=name,
        version=int(version),  # type: ignore[arg-type]
        encryption=enc,
        integrity=_integrity(
            enc, list(d.integrity) if integrity is None else integrity, "integrity"
        ),
        prf=_choices(list(d.prf) if prf is None else prf, PRF, "prf"),
        dh_groups=_choices(
            list(d.dh_groups) if dh_groups is None else dh_groups, DH_GROUPS, "dh_groups"
        ),
        lifetime=_lifetime(lifetime, "lifetime"),
    )


def ipsec_policy(
    name: str,
    encryption: object = None,
    integrity: object = None,
    pfs_group: object = "ecp256",
    lifetime: object = 3600,
    mode: object = "transport",
) -> IpsecPolicy:
    d = IpsecPolicy()
    enc = _choices(
        list(d.encryption) if encryption is None else encryption, ENCRYPTION, "encryption"
    )
    pfs: str | None = None
    if pfs_group not in (None, "none"):
        pfs = _choices([pfs_group], DH_GROUPS, "pfs_group")[0]
    if mode not in MODES:
        raise Invalid(f"mode: must be one of {', '.join(MODES)} (got {mode!r})", field="mode")
    return IpsecPolicy(
        name=name,
        encryption=enc,
        integrity=_integrity(
            enc, list(d.integrity) if integrity is None else integrity, "integrity"
        ),
        pfs_group=pfs,
        lifetime=_lifetime(lifetime, "lifetime"),
        mode=str(mode),
    )
