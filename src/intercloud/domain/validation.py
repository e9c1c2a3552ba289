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

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def name(value: object, field: str = "name") -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise Invalid(
            f"{field}: must be 1-63 characters of letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit (got {value!r})",
            field=field,
        )
    return value


def cidr(value: object, field: str = "cidr") -> str:
    if not isinstance(value, str):
        raise Invalid(f"{field}: must be a string such as '10.0.0.0/24'", field=field)
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise Invalid(f"{field}: invalid CIDR {value!r} ({exc})", field=field) from exc
    return str(net)


def _parse_ip(value: object, field: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if not isinstance(value, str):
        raise Invalid(f"{field}: must be an IP address string", field=field)
    try:
        return ipaddress.ip_address(value)
    except ValueError as exc:
        raise Invalid(f"{field}: invalid IP address {value!r}", field=field) from exc


def ip_address(value: object, field: str) -> str:
    addr = _parse_ip(value, field)
    if addr.is_unspecified or addr.is_multicast:
        raise Invalid(f"{field}: {value!r} cannot be a tunnel endpoint", field=field)
    return str(addr)


def vni(value: object, field: str = "vni") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not VNI_MIN <= value <= VNI_MAX:
        raise Invalid(
            f"{field}: must be an integer from {VNI_MIN} to {VNI_MAX} (got {value!r})", field=field
        )
    return value


def mtu(value: object, field: str = "mtu") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not MTU_MIN <= value <= MTU_MAX:
        raise Invalid(
            f"{field}: must be an integer from {MTU_MIN} to {MTU_MAX} (got {value!r})", field=field
        )
    return value


def tunnel_type(
    value: object, supported: tuple[str, ...] = ("vxlan",), field: str = "tunnel_type"
) -> str:
    if value not in TUNNEL_TYPES:
        raise Invalid(
            f"{field}: must be one of {', '.join(TUNNEL_TYPES)} (got {value!r})", field=field
        )
    if value not in supported:
        raise Invalid(
            f"{field}: {value!r} is not supported by this agent's data plane "
            f"(supported: {', '.join(supported)})",
            field=field,
        )
    return str(value)


def url(value: object, field: str = "federation_url") -> str:
    if not isinstance(value, str):
        raise Invalid(f"{field}: must be an http(s) URL", field=field)
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise Invalid(
            f"{field}: must be an http(s) URL such as 'http://198.18.1.2:8700' (got {value!r})",
            field=field,
        )
    return value.rstrip("/")


def secret(value: object, field: str = "key") -> str:
    if not isinstance(value, str) or len(value) < 16:
        raise Invalid(f"{field}: must be a string of at least 16 characters", field=field)
    return value


_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
MAX_PORTS = 4096


def address_in(value: object, cidr_: str, field: str) -> str:
    """An IP address (string) inside the network `cidr_`."""
    addr = _parse_ip(value, field)
    if addr not in ipaddress.ip_network(cidr_):
        raise Invalid(f"{field}: {value} is not in {cidr_}", field=field)
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
        if ipaddress.ip_address(a) > ipaddress.ip_address(b):
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
        if not _MAC_RE.match(mac):
            raise Invalid(f"{field}: invalid MAC {p[0]!r}", field=field)
        out.append([mac, address_in(p[1], cidr_, field)])
    return sorted(out)
