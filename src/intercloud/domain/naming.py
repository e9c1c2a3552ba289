"""Names of the host objects the agent makes: recognisable by prefix, at most 15 characters
(the Linux interface name limit, IFNAMSIZ - 1)."""

from __future__ import annotations

import re

from intercloud.errors import Invalid

IFNAME_MAX = 15
_PREFIX_RE = re.compile(r"[a-z][a-z0-9]{0,3}", re.ASCII)  # fullmatch: `$` took "ic\n"


def check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix):
        raise Invalid(
            "prefix: must be 1-4 lowercase letters or digits, starting with a letter "
            f"(got {prefix!r})",
            field="prefix",
        )
    return prefix


def _name(prefix: str, kind: str, ident: str) -> str:
    result = f"{prefix}{kind}{ident}"
    if len(result) > IFNAME_MAX:
        raise Invalid(f"interface name {result!r} is longer than {IFNAME_MAX} characters")
    return result


def bridge(prefix: str, network_key: str) -> str:
    """The bridge of one expanded network (origin) or replica (peer side); `network_key` is
    its owner's `Owner.key` (domain/owners.py)."""
    return _name(prefix, "b", network_key)


def vxlan(prefix: str, vni: int) -> str:
    """VNIs are unique per agent, so the VNI alone names the tunnel device."""
    return _name(prefix, "v", str(vni))


def patch(prefix: str, network_key: str) -> tuple[str, str]:
    """A veth pair joining our bridge (first name) to an operator's bridge (second name)."""
    return _name(prefix, "p", network_key), _name(prefix, "q", network_key)


def owned(prefix: str, ifname: str) -> bool:
    return ifname.startswith(prefix) and len(ifname) > len(prefix) and ifname[len(prefix)] in "bvpq"
