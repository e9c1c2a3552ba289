"""Names and options of the OVS data plane's own ports (each at most 15 characters)."""

from __future__ import annotations

import re
import zlib

from intercloud.domain.hoststate import Vxlan
from intercloud.errors import DriverError

TUNNEL_TYPES = ("vxlan", "geneve", "gre")
_BRIDGE_RE = re.compile(r"^(.+)b[er]\d+$")  # naming.bridge: <prefix>b<e|r><id>
_VXLAN_RE = re.compile(r"^(.+)v\d+$")  # naming.vxlan: <prefix>v<vni>


def patch_names(prefix: str) -> tuple[str, str]:
    """(our patch port in br-int, its peer in br-cloud)."""
    return f"{prefix}-to-cloud", f"{prefix}-to-int"


def dst_port(tunnel_type: str, vx: Vxlan) -> int | None:
    """The UDP port a tunnel port names (VXLAN only: Geneve and GRE use their own)."""
    return vx.port if tunnel_type == "vxlan" else None


def tunnel_port(prefix: str, tunnel_type: str, vx: Vxlan) -> str:
    """The tunnel port shared by every Vxlan with vx's endpoints: `<prefix>t<crc32>`."""
    key = f"{tunnel_type}|{vx.local}|{vx.remote}|{dst_port(tunnel_type, vx)}"
    return f"{prefix}t{zlib.crc32(key.encode()):08x}"


def tunnel_options(tunnel_type: str, vx: Vxlan) -> dict[str, str]:
    """The options of vx's tunnel port (key=flow: the flows pick the tunnel id)."""
    opts = {"remote_ip": vx.remote, "key": "flow"}
    if vx.local:  # else OVS picks the source address from its route to remote_ip
        opts["local_ip"] = vx.local
    port = dst_port(tunnel_type, vx)
    if port is not None:
        opts["dst_port"] = str(port)
    return opts


def prefix_of(name: str, ours: str) -> str:
    """The agent prefix of a recorded bridge or tunnel `name` (br-cloud may hold records of
    another agent's prefix; ours first, as a prefix may end like a name)."""
    if name.startswith(ours):
        return ours
    m = _BRIDGE_RE.match(name) or _VXLAN_RE.match(name)
    if not m:
        raise DriverError(f"ovs data plane: cannot tell the agent prefix of {name!r}")
    return m.group(1)
