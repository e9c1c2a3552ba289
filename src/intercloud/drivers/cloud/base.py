"""The cloud driver contract: who the caller is, and which networks a project may expand."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from intercloud.domain.proxy import Answer, Call
from intercloud.errors import Conflict, Forbidden


@dataclass(frozen=True)
class Principal:
    """The caller of the admin or user API."""

    admin: bool
    project: str | None = None


@dataclass(frozen=True)
class Network:
    name: str
    project: str
    cidr: str
    # what carries it locally: a host interface or bridge (standalone), the Neutron network id
    # whose br-int ports carry it (openstack: the OVS data plane finds their local VLAN by it)
    interface: str
    gateway: str | None = None


@dataclass(frozen=True)
class ReplicaSpec:
    """What a peer's expansion needs from this cloud: a network of the replicated project."""

    uid: str  # the expansion's id, shared by both agents; tags every object made for it
    project: str  # the replicated project's name here (e.g. "A.p1")
    network: str
    cidr: str
    gateway: str | None = None  # stays at the origin; None: no gateway
    # the addresses this cloud may hand out in that network, (first, last) inclusive, disjoint
    # from every other member's: the origin splits its pool (domain/pools.py)
    pools: tuple[tuple[str, str], ...] = ()
    # (mac, ip) of the VMs on the other clouds of the network (placeholder ports here)
    remote_ports: tuple[tuple[str, str], ...] = ()
    max_networks: int = 10  # the replicated project's network quota (from the agreement)


@dataclass
class ReplicaSync:
    # uid -> the local interface of each replica that exists (see Network.interface)
    interfaces: dict[str, str] = field(default_factory=dict)
    # uid -> why its replica could not be made (the others are still made)
    errors: dict[str, str] = field(default_factory=dict)
    changes: int = 0
    # uid -> (mac, ip) of the replica's own ports (this cloud's VMs on it), sorted
    local_ports: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Addressing:
    """A network's address use: its allocation pools and the (mac, ip) of its own ports."""

    pools: tuple[tuple[str, str], ...]
    ports: tuple[tuple[str, str], ...]


class Cloud(ABC):
    # Whether authenticate() answers from memory (no I/O): the API may then call it on its
    # event loop instead of handing it to a worker thread.
    authenticates_in_memory: bool = False

    @abstractmethod
    def authenticate(self, token: str) -> Principal | None:
        """The principal a bearer token stands for, or None if the token is unknown."""

    @abstractmethod
    def networks(self, project: str) -> list[Network]:
        """The project's local networks that it may expand."""

    def network(self, project: str, name: str) -> Network | None:
        for net in self.networks(project):
            if net.name == name:
                return net
        return None

    def all_networks(self) -> list[Network]:
        """Every expandable network, whatever the project (for the reconciler)."""
        return []

    def addressing(self, network: Network) -> Addressing | None:
        """Pools and ports of one of our networks; None where the cloud hands out no addresses
        (standalone: the operator does)."""
        return None

    def set_pools(self, network: Network, pools: list[tuple[str, str]]) -> None:
        """Make `pools` the network's allocation pools (the origin gives slices to peers)."""
        raise NotImplementedError

    def sync_placeholders(self, network: Network, ports: list[tuple[str, str]]) -> int:
        """Make the network's placeholder ports (the other clouds' VMs) exactly `ports`.
        Returns how many were made or removed."""
        return 0

    def placeholders_pending(self, network: Network) -> bool:
        """Whether some of the network's placeholders were held back by a live port of this
        cloud (a VM that moved here, its old port not deleted yet): sync again next pass."""
        return False

    def receive_port(self, network_id: str, mac: str, ip: str) -> dict[str, str]:
        """A VM's port arrives from another cloud of an expanded network (live migration): the
        placeholder of (mac, ip) gives way to a real port with them. Returns the port."""
        raise Conflict("moves need a cloud that has ports (the openstack cloud driver)")

    def sync_replicas(self, wanted: list[ReplicaSpec]) -> ReplicaSync:
        """Make the cloud hold exactly the `wanted` replicas (creating, updating and removing
        what it made before, found by tag), idempotently. Clouds without such objects (the
        standalone driver) have nothing to make: the data plane's bridge is the replica."""
        return ReplicaSync()

    def forward(self, project: str, call: Call, limit: int, timeout: float) -> Answer:
        """Make a peer's tenant call in this cloud as the local project `project` (the
        replica of the peer's project), its answer's body read up to `limit` bytes."""
        raise Forbidden(
            "service_type: this cloud runs no OpenStack services to proxy to",
            field="service_type",
        )
