"""What `intercloud diagnose` reads of the agent's host (service/diagnosis.py's Host), through
netlink in the agent's own namespace: the underlay route to a peer and the flood entries of a
VXLAN tunnel port. Read only; one netlink socket per question (callers are API threads, the
reconciler keeps its own).

The route is the one charon's packets take (with its socket mark: with kernel-libipsec every
other packet to the peer is routed into the TUN device), so it is the underlay's. No packet is
sent: with an encrypted link every packet between the two hosts but IKE's own is inside the
SA, so an echo would test IPsec, not the underlay; the IPsec layer proves the rest of the path.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from intercloud.domain.diagnosis import Route
from intercloud.drivers.ipsec.lane_layout import FWMARK
from intercloud.errors import DriverError

NUD_INCOMPLETE, NUD_FAILED = 0x01, 0x20


def _ip() -> Any:
    from pyroute2 import IPRoute

    return IPRoute()


class LinuxHost:
    """`reads_ports`: the data plane is the Linux one (VXLAN devices whose flood entries can
    be read); with another one, flood() is not asked."""

    def __init__(self, reads_ports: bool = True) -> None:
        self.reads_ports = reads_ports

    def route(self, address: str) -> Route:
        addr = ipaddress.ip_address(address)  # validated: only an address reaches netlink
        from pyroute2.netlink.exceptions import NetlinkError

        with _ip() as ip:
            try:
                found = ip.route("get", dst=str(addr), mark=FWMARK)
            except NetlinkError as exc:
                return Route(False, f"no route to {addr} ({exc.args[-1]})")
            if not found:
                return Route(False, f"no route to {addr}")
            r = found[0]
            gateway = r.get("RTA_GATEWAY")
            device = _name(ip, r.get("RTA_OIF"))
            hop = gateway or str(addr)
            via = f" via {gateway}" if gateway else ""
            detail = f"route to {addr}{via} dev {device}"
            state = _neighbour(ip, hop)
        if state is not None and state & (NUD_FAILED | NUD_INCOMPLETE):
            return Route(False, f"{detail}, but {hop} does not answer ARP/ND (neighbour failed)")
        return Route(True, detail)

    def flood(self, port: str) -> tuple[str, ...] | None:
        if not port.isascii() or not port.isalnum() or len(port) > 15:
            raise DriverError(f"{port!r} is not an interface name")
        with _ip() as ip:
            found = ip.link_lookup(ifname=port)
            if not found:
                return None
            entries = ip.fdb("dump", ifindex=found[0])
            return tuple(
                sorted(
                    str(e.get("NDA_DST"))
                    for e in entries
                    if e["ifindex"] == found[0]
                    and e.get("NDA_LLADDR") == "00:00:00:00:00:00"
                    and e.get("NDA_DST")
                )
            )


def _name(ip: Any, index: int | None) -> str:
    if index is None:
        return "?"
    links = ip.get_links(index)
    return str(links[0].get("IFLA_IFNAME")) if links else str(index)


def _neighbour(ip: Any, address: str) -> int | None:
    try:
        entries = ip.get_neighbours(dst=address)
    except Exception:
        return None
    return int(entries[0]["state"]) if entries else None
