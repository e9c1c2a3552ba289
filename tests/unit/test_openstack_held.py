"""A VM's address stays out of the source cloud's allocation pool while it moves away: from the
pass that sees it held by another cloud (its placeholder held back by the live port here)
until its placeholder is made, so the orchestrator's deletion of the old port never leaves it
free in the pool (drivers/cloud/openstack/held.py), against a stand-in Neutron."""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace

import pytest

from intercloud.config import CloudSection
from intercloud.domain import pools
from intercloud.drivers.cloud.base import Network
from intercloud.drivers.cloud.openstack.held import HELD_TAG
from intercloud.drivers.cloud.openstack.networks import Networks
from intercloud.drivers.cloud.openstack.replicas import Replicas
from intercloud.drivers.cloud.openstack.sdk import Sdk
from intercloud.drivers.cloud.openstack.tags import REMOTE_OWNER

VM = ("fa:16:3e:00:00:0a", "10.10.0.10")
NET = Network("net1", "p1", "10.10.0.0/24", "net-1", "10.10.0.1")


class Neutron:
    """One network, one subnet; after every change: no address of the pool is free unless
    Neutron may hand it out (the VM's address must never be both in the pool and unheld)."""

    def __init__(self) -> None:
        self.subnet = SimpleNamespace(
            id="sn-1",
            network_id="net-1",
            cidr="10.10.0.0/24",
            project_id="p1",
            tags=[],
            allocation_pools=[{"start": "10.10.0.2", "end": "10.10.0.100"}],
        )
        self.ports: list[SimpleNamespace] = []
        self.log: list[str] = []
        self.guarded = True  # the VM lives somewhere: its address must not be free here

    def _port(self, mac: str, ip: str, owner: str) -> SimpleNamespace:
        return SimpleNamespace(
            id=f"port-{len(self.log)}",
            mac_address=mac,
            fixed_ips=[{"subnet_id": "sn-1", "ip_address": ip}],
            device_owner=owner,
            network_id="net-1",
        )

    def add_live(self, mac: str, ip: str) -> None:
        self.ports.append(self._port(mac, ip, "compute:nova"))

    def in_pool(self, ip: str) -> bool:
        ranges = pools_of(self.subnet.allocation_pools)
        return any(
            ipaddress.ip_address(a) <= ipaddress.ip_address(ip) <= ipaddress.ip_address(b)
            for a, b in ranges
        )

    def held(self, ip: str) -> bool:
        return any(ip == f["ip_address"] for p in self.ports for f in p.fixed_ips)

    def check(self, what: str) -> None:
        self.log.append(what)
        assert not self.guarded or not (self.in_pool(VM[1]) and not self.held(VM[1])), (
            f"after {what}: {VM[1]} is free in the pool",
            self.log,
        )

    # the calls the driver makes
    def subnets(self, network_id=None, **_):
        return [self.subnet]

    def ports_of(self, network_id=None, **_):
        return list(self.ports)

    def create_port(self, **kw):
        ip = kw["fixed_ips"][0]["ip_address"]
        assert not self.held(ip), f"{ip} is taken"
        self.ports.append(self._port(kw["mac_address"], ip, kw.get("device_owner", "")))
        self.check(f"create_port {ip} {kw.get('device_owner')}")

    def delete_port(self, port):
        self.ports.remove(port)
        self.check(f"delete_port {port.fixed_ips[0]['ip_address']}")

    def update_subnet(self, subnet, allocation_pools):
        assert subnet is self.subnet
        self.subnet.allocation_pools = [dict(p) for p in allocation_pools]
        self.check(f"pools {allocation_pools}")

    def set_tags(self, res, tags):
        res.tags = list(tags)
        self.log.append(f"tags {tags}")


def pools_of(body):
    return pools.normalize((p["start"], p["end"]) for p in body)


@pytest.fixture
def neutron():
    n = Neutron()
    network = SimpleNamespace(
        subnets=n.subnets,
        ports=n.ports_of,
        create_port=n.create_port,
        delete_port=n.delete_port,
        update_subnet=n.update_subnet,
        set_tags=n.set_tags,
    )
    conn = SimpleNamespace(network=network)
    sdk = Sdk(CloudSection(driver="openstack"), connect=lambda: conn)
    return n, Replicas(sdk, Networks(sdk, CloudSection(driver="openstack")))


def test_the_address_leaves_the_pool_before_the_old_port_goes_and_comes_back_after(neutron):
    n, replicas = neutron
    n.add_live(*VM)  # the VM got its address here, from this pool
    assert n.in_pool(VM[1])
    # another cloud holds the VM now (its placeholder here is held back by the live port)
    replicas.sync_placeholders(NET, [VM])
    assert not n.in_pool(VM[1]) and HELD_TAG + VM[1] in n.subnet.tags
    assert not [p for p in n.ports if p.device_owner == REMOTE_OWNER]
    # the orchestrator deletes the old port (Neutron::check: not free in the pool)
    n.delete_port(next(p for p in n.ports if p.device_owner != REMOTE_OWNER))
    # the next pass: the placeholder first, then the address back in the pool
    replicas.sync_placeholders(NET, [VM])
    assert [p.mac_address for p in n.ports if p.device_owner == REMOTE_OWNER] == [VM[0]]
    assert n.in_pool(VM[1]) and n.subnet.tags == []
    assert pools_of(n.subnet.allocation_pools) == [("10.10.0.2", "10.10.0.100")]


def test_an_address_outside_the_pool_is_left_alone(neutron):
    n, replicas = neutron
    outside = ("fa:16:3e:00:00:0b", "10.10.0.200")  # a VM that got it in another cloud's slice
    n.add_live(*outside)
    replicas.sync_placeholders(NET, [outside])
    assert n.subnet.tags == [] and not [entry for entry in n.log if entry.startswith("pools")]


def test_a_vm_deleted_while_held_gives_its_address_back(neutron):
    n, replicas = neutron
    n.add_live(*VM)
    replicas.sync_placeholders(NET, [VM])
    assert not n.in_pool(VM[1])
    # the VM is deleted everywhere: no placeholder wanted any more, its address is free again
    n.ports.clear()
    n.guarded = False
    replicas.sync_placeholders(NET, [])
    assert n.in_pool(VM[1]) and n.subnet.tags == []


def test_the_tags_say_what_to_give_back_after_a_restart(neutron):
    n, replicas = neutron
    n.add_live(*VM)
    replicas.sync_placeholders(NET, [VM])
    n.delete_port(n.ports[0])
    # a new agent (no memory): the tag alone brings the address back after the placeholder
    fresh = Replicas(replicas.sdk, replicas.networks)
    fresh.sync_placeholders(NET, [VM])
    assert n.in_pool(VM[1]) and n.subnet.tags == []
