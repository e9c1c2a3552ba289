"""A VM's port arriving from another cloud of an expanded network (live migration): the
placeholder that stood for it here gives way to a real port with the same MAC and IP.

Refused, with the field named: an address not in the network's subnet, or one that no VM of
the network's other clouds holds here (no placeholder with that MAC and IP: nothing to move);
a MAC or IP that a live port of this cloud holds, or that another cloud's VM holds with a
different IP or MAC. The placeholder is removed and the port made under the same lock as the
placeholder passes, so a pass never puts the placeholder back in between."""

from __future__ import annotations

import ipaddress
import logging
import threading
import uuid
from dataclasses import dataclass
from functools import partial
from typing import Any

from intercloud.drivers.cloud.openstack.sdk import Sdk
from intercloud.drivers.cloud.openstack.tags import REMOTE_OWNER
from intercloud.errors import CloudError, Conflict, Invalid, NotFound

log = logging.getLogger("intercloud.cloud.openstack")


@dataclass(frozen=True)
class Arrival:
    port_id: str
    network_id: str
    project_id: str
    mac: str
    ip: str

    def as_dict(self) -> dict[str, str]:
        return {
            "port_id": self.port_id,
            "network_id": self.network_id,
            "project_id": self.project_id,
            "mac": self.mac,
            "ip": self.ip,
        }


def _ips(port: Any) -> list[str]:
    return [f["ip_address"] for f in port.fixed_ips or []]


def _check(ports: list[Any], mac: str, ip: str) -> Any:
    """The placeholder of (mac, ip) among the network's ports, or the reason to refuse."""
    placeholder = None
    for p in ports:
        same_mac = (p.mac_address or "").lower() == mac
        holds_ip = ip in _ips(p)
        if not (same_mac or holds_ip):
            continue
        if p.device_owner != REMOTE_OWNER:
            what, field = (f"MAC {mac}", "mac") if same_mac else (f"IP {ip}", "ip")
            raise Conflict(
                f"{field}: {what} is held by live port {p.id} in this cloud", field=field
            )
        if same_mac and holds_ip:
            placeholder = p
        elif same_mac:
            raise Conflict(
                f"mac: MAC {mac} is held by another live port (IP {', '.join(_ips(p))}) in "
                "another cloud",
                field="mac",
            )
        else:
            raise Conflict(
                f"ip: IP {ip} is held by another live port (MAC {p.mac_address}) in another cloud",
                field="ip",
            )
    if placeholder is None:
        raise Conflict(
            f"mac: no VM of the network's other clouds has MAC {mac} and IP {ip}: nothing to move",
            field="mac",
        )
    return placeholder


class Moves:
    def __init__(self, sdk: Sdk, lock: threading.Lock) -> None:
        self.sdk = sdk
        self.lock = lock  # shared with the placeholder passes

    def receive(self, network_id: str, mac: str, ip: str) -> Arrival:
        try:
            network_id = str(uuid.UUID(network_id))
        except ValueError:
            raise Invalid(
                "network: must be a Neutron network id (a UUID)", field="network"
            ) from None
        conn = self.sdk.conn()
        net = self.sdk.call(
            "reading the network",
            lambda: next(iter(conn.network.networks(id=network_id)), None),
        )
        if net is None:
            raise NotFound(f"network: no network {network_id} in this cloud", field="network")
        subnets = self.sdk.call(
            "listing the network's subnets", lambda: list(conn.network.subnets(network_id=net.id))
        )
        addr = ipaddress.ip_address(ip)
        subnet = next((s for s in subnets if addr in ipaddress.ip_network(s.cidr)), None)
        if subnet is None:
            cidrs = ", ".join(s.cidr for s in subnets) or "none"
            raise Invalid(f"ip: {ip} is not in the network's subnets ({cidrs})", field="ip")
        with self.lock:
            ports = self.sdk.call(
                "listing the network's ports", lambda: list(conn.network.ports(network_id=net.id))
            )
            placeholder = _check(ports, mac, ip)
            project_id = placeholder.project_id
            self.sdk.call(
                "removing the placeholder", partial(conn.network.delete_port, placeholder)
            )
            try:
                port = self.sdk.call(
                    f"making the port of {mac} {ip}",
                    partial(
                        conn.network.create_port,
                        network_id=net.id,
                        project_id=project_id,
                        mac_address=mac,
                        fixed_ips=[{"subnet_id": subnet.id, "ip_address": ip}],
                        name=f"moved {ip}",
                        description="intercloud: a VM that moved here from another cloud",
                    ),
                )
            except CloudError:
                self._restore(placeholder, subnet.id)
                raise
        log.info("network %s: port %s (%s %s) arrived from another cloud", net.id, port.id, mac, ip)
        return Arrival(port.id, net.id, project_id, mac, ip)

    def _restore(self, placeholder: Any, subnet_id: str) -> None:
        """Best effort: the placeholder back, so the address stays reserved."""
        conn = self.sdk.conn()
        try:
            self.sdk.call(
                "restoring the placeholder",
                partial(
                    conn.network.create_port,
                    network_id=placeholder.network_id,
                    project_id=placeholder.project_id,
                    mac_address=placeholder.mac_address,
                    fixed_ips=[{"subnet_id": subnet_id, "ip_address": _ips(placeholder)[0]}],
                    device_owner=REMOTE_OWNER,
                    name=placeholder.name,
                    description=placeholder.description,
                ),
            )
        except CloudError as exc:
            log.error(
                "the placeholder of %s could not be restored: %s", placeholder.mac_address, exc
            )
