"""OpenStackCloud: the Cloud contract over Keystone and Neutron (see the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from intercloud.domain.proxy import Answer, Call
from intercloud.drivers.cloud.base import (
    Addressing,
    Cloud,
    Network,
    Principal,
    ReplicaSpec,
    ReplicaSync,
)
from intercloud.drivers.cloud.openstack.keystone import Tokens
from intercloud.drivers.cloud.openstack.moves import Moves
from intercloud.drivers.cloud.openstack.networks import Networks
from intercloud.drivers.cloud.openstack.proxy import ProjectProxy
from intercloud.drivers.cloud.openstack.replicas import Replicas
from intercloud.drivers.cloud.openstack.sdk import Sdk

if TYPE_CHECKING:
    from intercloud.drivers.cloud import Section


class OpenStackCloud(Cloud):
    """`cfg`: the [cloud] section; `connect` hands in an openstacksdk connection (tests)."""

    def __init__(self, cfg: Section, connect: Callable[[], Any] | None = None) -> None:
        self.sdk = Sdk(cfg, connect)
        self.tokens = Tokens(self.sdk, cfg)
        self.nets = Networks(self.sdk, cfg)
        self.replicas = Replicas(self.sdk, self.nets)
        self.proxy = ProjectProxy(self.sdk, cfg)
        self.moves = Moves(self.sdk, self.replicas.lock)

    def authenticate(self, token: str) -> Principal | None:
        return self.tokens.authenticate(token)

    def networks(self, project: str) -> list[Network]:
        return [n for n in self.nets.all() if n.project == project]

    def network(self, project: str, name: str) -> Network | None:
        """By name, or by Neutron id (names need not be unique in Neutron)."""
        mine = self.networks(project)
        return next((n for n in mine if n.interface == name), None) or next(
            (n for n in mine if n.name == name), None
        )

    def all_networks(self) -> list[Network]:
        return list(self.nets.all())

    def addressing(self, network: Network) -> Addressing:
        return self.nets.addressing(network)

    def set_pools(self, network: Network, pools: list[tuple[str, str]]) -> None:
        self.nets.set_pools(network, pools)

    def sync_replicas(self, wanted: list[ReplicaSpec]) -> ReplicaSync:
        return self.replicas.sync_replicas(wanted)

    def sync_placeholders(self, network: Network, ports: list[tuple[str, str]]) -> int:
        return self.replicas.sync_placeholders(network, ports)

    def forward(self, project: str, call: Call, limit: int, timeout: float) -> Answer:
        return self.proxy.forward(project, call, limit, timeout)

    def placeholders_pending(self, network: Network) -> bool:
        return network.interface in self.replicas.pending

    def receive_port(self, network_id: str, mac: str, ip: str) -> dict[str, str]:
        arrival = self.moves.receive(network_id, mac, ip)
        self.nets.forget_addressing(arrival.network_id)
        return arrival.as_dict()
