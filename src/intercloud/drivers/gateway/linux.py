"""The gateway role on Linux.

The cloud's address lives on a TUN device that only this process holds open (`<prefix>ha`, no
`persist`): the kernel deletes the device, and the address with it, the moment the agent's
process ends however it ends (kill -9, a crash, the OOM killer). A dead agent therefore never
leaves the address behind on a host that still forwards. The address is a /32 there (no route
to the underlay's subnet through the TUN); the host answers ARP for it on the underlay
interface as for any local address (arp_ignore 0, checked at take-over). Tunnel ports use the
address as their source: without it they cannot send, and nothing reaches them."""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import logging
import os
import socket
import struct
import threading
import time
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from intercloud.domain.remote_macs import RemoteMacs, checked
from intercloud.drivers.gateway import tenant
from intercloud.drivers.gateway.base import GatewayDriver
from intercloud.errors import DriverError

log = logging.getLogger("intercloud.gateway")

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
ETH_P_ARP = 0x0806
NTF_MASTER = 0x04  # an entry of the bridge's FDB (not the port device's own)
# a neighbour ignores a second gratuitous ARP within its locktime (1 s by default): repeat
# once right away (a lost frame) and once after that
GARP_AT = (0.0, 0.2, 1.2)


def arp_announcement(mac: bytes, ip: bytes) -> bytes:
    """A gratuitous ARP request: who-has `ip` tell `ip`, from `mac`, to everyone."""
    ether = b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + ip + b"\x00" * 6 + ip
    return ether + arp


class LinuxGateway(GatewayDriver):
    def __init__(self, prefix: str, address: str, interface: str) -> None:
        self.device = f"{prefix}ha"
        self.ports_prefix = f"{prefix}v"  # naming.vxlan: our tunnel ports
        self.address = ipaddress.IPv4Interface(address).ip
        self.interface = interface
        self._fd: int | None = None
        self._lock = threading.Lock()

    def take_over(self) -> None:
        with self._lock:
            self._check_arp()
            with IPRoute() as ipr:
                self._check_not_elsewhere(ipr)
                if self._fd is None:
                    self._fd = self._open_tun()
                index = self._index(ipr, self.device)
                ipr.link("set", index=index, state="up")
                with contextlib.suppress(NetlinkError):  # EEXIST: held already
                    ipr.addr("add", index=index, address=str(self.address), prefixlen=32)
                # tunnel ports stay down: the reconciler's pass brings up those whose link
                # may carry traffic (an encrypted one only once its SA is up: before that a
                # port would send VXLAN in the clear)
                mac = self._mac(ipr)
        threading.Thread(target=self._announce, args=(mac,), name="garp", daemon=True).start()

    def step_down(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)  # the device and its address go with the last open file
            with IPRoute() as ipr:
                self._ports(ipr, "down")

    def holds_address(self) -> bool:
        with IPRoute() as ipr:
            return any(a.get("address") == str(self.address) for a in self._addresses(ipr))

    def close(self) -> None:
        self.step_down()

    def remote_macs(self) -> RemoteMacs:
        with IPRoute() as ipr:
            links = tenant.links_of(ipr.get_links())
            return tenant.learned_remote(
                links, ipr.get_neighbours(family=socket.AF_BRIDGE), self.ports_prefix
            )

    def announce(self, macs: RemoteMacs) -> list[str]:
        macs = checked(macs, "the caller")  # bytes.fromhex below: only MACs
        with IPRoute() as ipr:
            links = tenant.links_of(ipr.get_links())
            ports = tenant.tenant_ports(links, self.ports_prefix, macs)
            fdb = ipr.get_neighbours(family=socket.AF_BRIDGE)
            for index, mac in tenant.stale_on_tenant_side(links, fdb, self.ports_prefix, macs):
                with contextlib.suppress(NetlinkError):  # aged out meanwhile
                    ipr.fdb("del", ifindex=index, lladdr=mac, flags=NTF_MASTER)
        frames = {
            port: [tenant.rarp_announcement(bytes.fromhex(m.replace(":", ""))) for m in macs[b]]
            for b, names in ports.items()
            for port in names
        }
        log.info(
            "gateway: announcing %d remote MACs on %d tenant ports (%s)",
            sum(len(macs[b]) for b, names in ports.items() if names),
            len(frames),
            ", ".join(sorted(frames)) or "none",
        )
        self._send_rounds(frames)
        return sorted(b for b, names in ports.items() if names)

    def _send_rounds(self, frames: dict[str, list[bytes]]) -> None:
        failed: set[str] = set()
        started = time.monotonic()
        for at in GARP_AT:
            delay = started + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if self._fd is None:
                return  # stepped down meanwhile
            for port, batch in frames.items():
                try:
                    tenant.send_frames(port, batch)
                except OSError as exc:  # the port gone meanwhile: said once
                    if port not in failed:
                        failed.add(port)
                        log.warning("gateway: announcing on %s failed: %s", port, exc)

    def _open_tun(self) -> int:
        fd = os.open("/dev/net/tun", os.O_RDWR)  # not inherited by children (PEP 446)
        try:
            fcntl.ioctl(
                fd, TUNSETIFF, struct.pack("16sH", self.device.encode(), IFF_TUN | IFF_NO_PI)
            )
        except OSError as exc:
            os.close(fd)
            raise DriverError(f"gateway: cannot make {self.device}: {exc.strerror}") from exc
        return fd

    def _check_arp(self) -> None:
        values = []
        for conf in ("all", self.interface):  # the kernel applies the larger of the two
            try:
                with open(f"/proc/sys/net/ipv4/conf/{conf}/arp_ignore") as f:
                    values.append(int(f.read().strip()))
            except (OSError, ValueError) as exc:
                raise DriverError(f"gateway: no underlay interface {self.interface}") from exc
        value = max(values)
        if value != 0:
            raise DriverError(
                f"gateway: {self.interface} has arp_ignore {value}: it would not answer ARP for "
                f"the cloud's address (sysctl net.ipv4.conf.{self.interface}.arp_ignore=0)"
            )

    def _check_not_elsewhere(self, ipr: Any) -> None:
        """The address configured by hand (on any other interface) would stay when this
        gateway steps down or dies: refused, so that the fence holds."""
        index = ipr.link_lookup(ifname=self.device)
        for a in ipr.get_addr(family=socket.AF_INET, address=str(self.address)):
            if not index or a["index"] != index[0]:
                raise DriverError(
                    f"gateway: the cloud's address {self.address} is configured on this host "
                    "outside the agent; remove it (the active gateway holds it itself)"
                )

    def _index(self, ipr: Any, name: str) -> int:
        found = ipr.link_lookup(ifname=name)
        if not found:
            raise DriverError(f"gateway: no interface {name}")
        return int(found[0])

    def _mac(self, ipr: Any) -> bytes:
        link = ipr.get_links(self._index(ipr, self.interface))[0]
        return bytes.fromhex(link.get_attr("IFLA_ADDRESS").replace(":", ""))

    def _ports(self, ipr: Any, state: str) -> None:
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME") or ""
            info = link.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
            if kind == "vxlan" and name.startswith(self.ports_prefix):
                with contextlib.suppress(NetlinkError):  # gone meanwhile
                    ipr.link("set", index=link["index"], state=state)

    def _addresses(self, ipr: Any) -> list[dict[str, str]]:
        return [
            {"address": a.get_attr("IFA_ADDRESS"), "label": a.get_attr("IFA_LABEL")}
            for a in ipr.get_addr(family=socket.AF_INET)
        ]

    def _announce(self, mac: bytes) -> None:
        """The gratuitous ARP for the cloud's address, on the same schedule as the MACs'."""
        self._send_rounds({self.interface: [arp_announcement(mac, self.address.packed)]})
