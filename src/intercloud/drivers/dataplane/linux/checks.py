"""Checks at the writers: every value put into an `ip -batch` line, an nft script or a netlink
request is checked for exactly its use right where it is written, whatever was checked
before (defence in depth: a peer's answer once reached an `ip -batch` line unchecked, and its
newline made a command of its own). A value that fails raises DriverError; nothing is written.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re

from intercloud.domain.hoststate import Vxlan
from intercloud.domain.validation import VNI_MAX, VNI_MIN, shown
from intercloud.errors import DriverError

# What our naming (domain/naming.py) and sane operators produce; nothing a command line or an
# nft string could read as a separator, a quote or a comment (no space, '"', ';', '#', '\').
_IFNAME = re.compile(r"[A-Za-z0-9_.@+=-]{1,15}", re.ASCII)
_MARK = re.compile(r"intercloud:mtu=[0-9]{1,5}", re.ASCII)


def is_ifname(name: object) -> bool:
    return isinstance(name, str) and _IFNAME.fullmatch(name) is not None


def ifname(name: object, what: str = "interface") -> str:
    if not is_ifname(name):
        raise DriverError(f"refusing to write {what} name {_shown(name)}: not an interface name")
    return str(name)


def address(value: object, what: str = "address") -> str:
    """A plain host address (no prefix, no zone id), in its canonical text form."""
    if isinstance(value, str) and value.isascii() and value.isprintable():
        try:
            if not any(c in value for c in " %/"):
                return str(ipaddress.ip_address(value))
        except ValueError:
            pass
    raise DriverError(f"refusing to write {what} {_shown(value)}: not a plain IP address")


def integer(value: object, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DriverError(f"refusing to write {what} {_shown(value)}: not an integer {low}..{high}")
    return value


def mtu(value: object) -> int:
    return integer(value, 68, 65535, "MTU")


def vxlan(vx: Vxlan) -> Vxlan:
    """Every value a VXLAN device is made from (its addresses in canonical form); both ends
    of one family."""
    ifname(vx.name, "vxlan")
    ifname(vx.master, "bridge")
    integer(vx.vni, VNI_MIN, VNI_MAX, "VNI")
    integer(vx.port, 1, 65535, "UDP port")
    local, remote = address(vx.local, "local"), address(vx.remote, "remote")
    if (":" in local) != (":" in remote):
        raise DriverError(f"cannot create vxlan {vx.name}: {local} and {remote} differ in family")
    if vx.mtu is not None:
        mtu(vx.mtu)
    return dataclasses.replace(vx, local=local, remote=remote)


def mark(value: object) -> str:
    """Our interface alias (the MTU record, netlink.MTU_MARK)."""
    if not isinstance(value, str) or not _MARK.fullmatch(value):
        raise DriverError(f"refusing to write alias {_shown(value)}: not our MTU mark")
    return value


def one_line(line: str) -> str:
    """The last guard of a line-oriented writer: one printable line."""
    if not line.isprintable():
        raise DriverError(f"refusing to write {_shown(line)}: not one printable line")
    return line


def _shown(value: object) -> str:
    return shown(value, 60)
