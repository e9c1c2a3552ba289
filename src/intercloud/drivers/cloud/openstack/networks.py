"""The expandable networks of an OpenStack cloud (Neutron networks with an IPv4 subnet, in
projects of the configured domain) and their addressing, each read once per cache window."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from intercloud.drivers.cloud.base import Addressing, Network
from intercloud.drivers.cloud.openstack.sdk import Sdk
from intercloud.drivers.cloud.openstack.tags import REMOTE_OWNER, TAG, pools_of
from intercloud.errors import CloudError

if TYPE_CHECKING:
    from intercloud.drivers.cloud import Section

log = logging.getLogger("intercloud.cloud.openstack")


class Networks:
    def __init__(self, sdk: Sdk, cfg: Section) -> None:
        self.sdk = sdk
        self.cfg = cfg
        self._lock = threading.Lock()
        self._listing: tuple[float, list[Network]] | None = None
        self._addressing: dict[str, tuple[float, Addressing]] = {}  # network id -> (until, it)

    def forget(self) -> None:
        """The networks changed (replicas made or removed): list them again."""
        with self._lock:
            self._listing = None

    def all(self) -> list[Network]:
        now = time.monotonic()
        with self._lock:
            if self._listing is not None and self._listing[0] > now:
                return self._listing[1]
            conn = self.sdk.conn()
            projects = self.sdk.call(
                "listing Keystone projects",
                lambda: {p.id: p.name for p in conn.identity.projects(domain_id=self.sdk.domain())},
            )
            subnets: dict[str, Any] = {}
            for sn in self.sdk.call(
                "listing Neutron subnets", lambda: list(conn.network.subnets(ip_version=4))
            ):
                subnets.setdefault(sn.network_id, sn)
            nets = []
            for n in self.sdk.call(
                "listing Neutron networks", lambda: list(conn.network.networks())
            ):
                sn = subnets.get(n.id)
                project = projects.get(n.project_id)
                # replicas we made for peers are not the project's own to expand again
                if sn is None or project is None or TAG in (n.tags or []):
                    continue
                nets.append(Network(n.name or n.id, project, sn.cidr, n.id, sn.gateway_ip))
            self._listing = (now + self.cfg.cache_seconds, nets)
            return nets

    def subnet(self, network: Network) -> Any:
        conn = self.sdk.conn()
        for sn in self.sdk.call(
            "listing the network's subnets",
            lambda: list(conn.network.subnets(network_id=network.interface)),
        ):
            if sn.cidr == network.cidr:
                return sn
        raise CloudError(f"openstack: network {network.name!r} has no subnet {network.cidr}")

    def addressing(self, network: Network) -> Addressing:
        """Read once per network per cache window, not once per target in every pass (a
        network expanded to several peers is asked for each); set_pools drops the entry."""
        now = time.monotonic()
        hit = self._addressing.get(network.interface)
        if hit is not None and hit[0] > now:
            return hit[1]
        conn = self.sdk.conn()
        subnet = self.subnet(network)
        ports = []
        for port in self.sdk.call(
            "listing the network's ports",
            lambda: list(conn.network.ports(network_id=network.interface)),
        ):
            if port.device_owner == REMOTE_OWNER:
                continue  # other clouds' VMs: not ours to tell
            for f in port.fixed_ips or []:
                if f.get("subnet_id") == subnet.id:
                    ports.append((port.mac_address, f["ip_address"]))
        found = Addressing(pools_of(subnet.allocation_pools), tuple(sorted(ports)))
        self._addressing[network.interface] = (now + self.cfg.cache_seconds, found)
        return found

    def forget_addressing(self, network_id: str) -> None:
        """A port came or went (a VM moved here): read the network's ports again."""
        self._addressing.pop(network_id, None)

    def set_pools(self, network: Network, pools: list[tuple[str, str]]) -> None:
        # a slice carved for one peer must not be carved again from a stale pool for the next
        self._addressing.pop(network.interface, None)
        subnet = self.subnet(network)
        if pools_of(subnet.allocation_pools) == tuple(sorted(pools)):
            return
        self.sdk.call(
            f"setting the allocation pools of {network.name!r}",
            lambda: self.sdk.conn().network.update_subnet(
                subnet, allocation_pools=[{"start": a, "end": b} for a, b in pools]
            ),
        )
        log.info("network %s: allocation pools now %s", network.name, pools)
