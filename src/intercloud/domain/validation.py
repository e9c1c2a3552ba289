"""Validation of user and peer input; every error names its field."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlparse

from intercloud.errors import Invalid

VNI_MIN = 1
VNI_MAX = 2**24 - 1
MTU_MIN = 576
MTU_MAX = 9000
TUNNEL_TYPES = ("vxlan", "geneve", "gre")

# fullmatch everywhere: `$` would accept a trailing newline ("net9\n")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", re.ASCII)
_UID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SHOWN_MAX = 80  # how much of a bad value an error message repeats


def shown(value: object, limit: int = SHOWN_MAX) -> str:
    """A bad value as an error message repeats it: repr (no raw newline), bounded."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def name(value: object, field: str = "name") -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise Invalid(
            f"{field}: must be 1-63 characters of letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit (got {shown(value)})",
            field=field,
        )
    return value


def uid(value: object, field: str = "id") -> str:
    """An expansion's id: a UUID in its canonical lower-case form (service/user.py)."""
    if not isinstance(value, str) or not _UID_RE.fullmatch(value):
        raise Invalid(f"{field}: must be a UUID such as {EXAMPLE_UID!r}", field=field)
    return value


EXAMPLE_UID = "0b6f3a52-0000-4000-8000-000000000001"


def _plain_text(value: str) -> bool:
    """ASCII, printable, no space: all an address or a CIDR is ever made of. Rules out IPv6
    zone ids' free text ("fe80::1%x\nnetns exec ...") before ipaddress sees it."""
    return value.isascii() and value.isprintable() and " " not in value and "%" not in value


def cidr(value: object, field: str = "cidr") -> str:
    """A network with its prefix ('10.0.0.0/24'); no zone id, host bits zero."""
    if not isinstance(value, str) or len(value) > 64:
        raise Invalid(f"{field}: must be a string such as '10.0.0.0/24'", field=field)
    if not _plain_text(value) or "/" not in value:
        raise Invalid(
            f"{field}: invalid CIDR {shown(value)} (an address, '/', a prefix length)",
            field=field,
        )
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise Invalid(f"{field}: invalid CIDR {shown(value)} ({exc})", field=field) from exc
    return str(net)


def _parse_ip(value: object, field: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A plain host address: no zone id, no prefix; an IPv4-mapped IPv6 address
    ('::ffff:198.18.0.1') is the IPv4 address it maps."""
    if not isinstance(value, str) or len(value) > 45:
        raise Invalid(f"{field}: must be an IP address string", field=field)
    if not _plain_text(value) or "/" in value:
        raise Invalid(
            f"{field}: invalid IP address {shown(value)} (a plain address: no prefix, no zone id)",
            field=field,
        )
    try:
        addr = ipaddress.ip_address(value)
    except ValueError as exc:
        raise Invalid(f"{field}: invalid IP address {shown(value)}", field=field) from exc
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def ip_address(value: object, field: str) -> str:
    """A tunnel endpoint: a plain unicast host address (`_parse_ip`)."""
    addr = _parse_ip(value, field)
    if addr.is_unspecified or addr.is_multicast or _is_broadcast(addr):
        raise Invalid(f"{field}: {shown(value)} cannot be a tunnel endpoint", field=field)
    return str(addr)


def _is_broadcast(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return isinstance(addr, ipaddress.IPv4Address) and int(addr) == 0xFFFFFFFF


def vni(value: object, field: str = "vni", low: int = VNI_MIN, high: int = VNI_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Invalid(
            f"{field}: must be an integer from {low} to {high} (got {shown(value)})", field=field
        )
    return value


def mtu(value: object, field: str = "mtu") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not MTU_MIN <= value <= MTU_MAX:
        raise Invalid(
            f"{field}: must be an integer from {MTU_MIN} to {MTU_MAX} (got {shown(value)})",
            field=field,
        )
    return value


def tunnel_type(
    value: object, supported: tuple[str, ...] = ("vxlan",), field: str = "tunnel_type"
) -> str:
    if value not in TUNNEL_TYPES:
        raise Invalid(
            f"{field}: must be one of {', '.join(TUNNEL_TYPES)} (got {shown(value)})", field=field
        )
    if value not in supported:
        raise Invalid(
            f"{field}: {value!r} is not supported by this agent's data plane "
            f"(supported: {', '.join(supported)})",
            field=field,
        )
    return str(value)


def url(value: object, field: str = "federation_url") -> str:
    if not isinstance(value, str) or len(value) > 255:
        raise Invalid(f"{field}: must be an http(s) URL", field=field)
    # urlparse drops tabs and newlines silently; the stored value would keep them
    parsed = urlparse(value) if _plain_text(value.replace("%", "")) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise Invalid(
            f"{field}: must be an http(s) URL such as 'http://198.18.1.2:8700' "
            f"(got {shown(value)})",
            field=field,
        )
    return value.rstrip("/")


SECRET_MAX = 255  # the key and psk columns (store/models.py)


def secret(value: object, field: str = "key") -> str:
    """A key or PSK: 16-255 printable ASCII characters. Never quoted back in the error."""
    if (
        not isinstance(value, str)
        or not 16 <= len(value) <= SECRET_MAX
        or not value.isascii()
        or not value.isprintable()
    ):
        raise Invalid(
            f"{field}: must be a string of 16 to {SECRET_MAX} printable ASCII characters",
            field=field,
        )
    return value


_MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
MAX_PORTS = 4096
MAX_CONFIRMATIONS = 100  # replicas one confirmation call re-checks (reconciler/confirms.py)


def address_in(value: object, cidr_: str, field: str) -> str:
    """An IP address (string) inside the network `cidr_`."""
    addr = _parse_ip(value, field)
    if addr not in ipaddress.ip_network(cidr_):
        raise Invalid(f"{field}: {addr} is not in {cidr_}", field=field)
    return str(addr)


def addressing(value: object, cidr_: str, field: str = "addressing") -> dict:
    """What the origin tells a peer about a network's addresses (OpenStack replicas): its
    gateway, the pool slice the peer may hand out, the (mac, ip) of the other clouds' ports.
    Every address must lie in the network's CIDR."""
    if not isinstance(value, dict) or set(value) - {"gateway", "pools", "ports"}:
        raise Invalid(f"{field}: must be an object with gateway, pools and ports", field=field)
    gateway = value.get("gateway")
    out: dict = {
        "gateway": None if gateway is None else address_in(gateway, cidr_, f"{field}.gateway")
    }
    pools = value.get("pools") or []
    where = f"{field}.pools"
    if not isinstance(pools, list) or len(pools) > 64:
        raise Invalid(f"{where}: must be a list of [first, last]", field=where)
    out["pools"] = []
    for p in pools:
        if not isinstance(p, list) or len(p) != 2:
            raise Invalid(f"{where}: each must be [first, last]", field=where)
        a, b = address_in(p[0], cidr_, where), address_in(p[1], cidr_, where)
        # both in cidr_: one family, so their integers compare
        if int(ipaddress.ip_address(a)) > int(ipaddress.ip_address(b)):
            raise Invalid(f"{where}: {a} is after {b}", field=where)
        out["pools"].append([a, b])
    out["ports"] = port_list(value.get("ports") or [], cidr_, f"{field}.ports")
    return out


def port_list(value: object, cidr_: str, field: str = "ports") -> list[list[str]]:
    """[[mac, ip], ...] of VMs in a network: lower-case MACs, addresses inside `cidr_`."""
    if not isinstance(value, list) or len(value) > MAX_PORTS:
        raise Invalid(f"{field}: must be a list of at most {MAX_PORTS} [mac, ip]", field=field)
    out = []
    for p in value:
        if not isinstance(p, list) or len(p) != 2 or not all(isinstance(x, str) for x in p):
            raise Invalid(f"{field}: each must be [mac, ip]", field=field)
        mac = p[0].lower()
        if not _MAC_RE.fullmatch(mac):
            raise Invalid(f"{field}: invalid MAC {shown(p[0])}", field=field)
        out.append([mac, address_in(p[1], cidr_, field)])
    return sorted(out)
