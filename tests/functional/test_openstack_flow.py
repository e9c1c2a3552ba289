"""The OpenStack-mode control plane in one process: two agents whose cloud hands out addresses
(an in-memory stand-in for Neutron). The real Keystone/Neutron are in the integration tests."""

from __future__ import annotations

import pytest

from intercloud.domain import pools
from intercloud.drivers.cloud.base import (
    Addressing,
    Cloud,
    Network,
    ReplicaSpec,
    ReplicaSync,
)
from intercloud.drivers.cloud.standalone import StandaloneCloud
from intercloud.errors import PeerError
from intercloud.federation.peers import PeerRef
from tests.functional.federation_harness import Router, converge, make_agent, peer

FULL = (("10.10.0.2", "10.10.0.254"),)


class AddressingCloud(StandaloneCloud):
    """The standalone cloud's projects and tokens, plus pools, ports and replicas."""

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.pools: dict[str, tuple[tuple[str, str], ...]] = {
            n.name: FULL for n in self.all_networks()
        }
        self.ports: dict[str, list[tuple[str, str]]] = {n.name: [] for n in self.all_networks()}
        self.replicas: dict[str, ReplicaSpec] = {}
        self.replica_ports: dict[str, list[tuple[str, str]]] = {}  # network -> our VMs on it
        self.placeholders: dict[str, list[tuple[str, str]]] = {}
        self.slow: set[str] = set()  # networks whose replica this cloud has not made yet
        self.refusing: dict[str, str] = {}  # network -> why this cloud refuses its replica

    def networks(self, project):
        return [
            Network(n.name, n.project, n.cidr, n.interface, "10.10.0.1")
            for n in super().networks(project)
        ]

    def network(self, project, name):
        # the base lookup goes through networks() above (the standalone cloud's is a dict)
        return Cloud.network(self, project, name)

    def addressing(self, network):
        return Addressing(self.pools[network.name], tuple(sorted(self.ports[network.name])))

    def set_pools(self, network, ranges):
        self.pools[network.name] = tuple(pools.normalize(ranges))

    def sync_replicas(self, wanted):
        self.replicas = {w.uid: w for w in wanted}
        made = [w for w in wanted if w.network not in self.slow | set(self.refusing)]
        return ReplicaSync(
            interfaces={w.uid: f"tn-{w.network}" for w in made},
            errors={w.uid: self.refusing[w.network] for w in wanted if w.network in self.refusing},
            local_ports={
                w.uid: tuple(sorted(self.replica_ports.get(w.network, []))) for w in wanted
            },
        )

    def sync_placeholders(self, network, ports):
        changed = sorted(ports) != self.placeholders.get(network.name, [])
        self.placeholders[network.name] = sorted(ports)
        return int(changed)


def agents(tmp_path, names):
    router = Router()
    made = [make_agent(tmp_path, router, n, i) for i, n in enumerate(names, 1)]
    for agent in made:
        cloud = AddressingCloud(agent.ctx.cfg)
        agent.ctx.cloud = agent.ctx.reconciler.cloud = cloud
    return made


@pytest.fixture
def pair(tmp_path):
    a, b = agents(tmp_path, "AB")
    peer(a, b)
    yield a, b
    for agent in (a, b):
        agent.ctx.store.dispose()


@pytest.fixture
def trio(tmp_path):
    a, b, c = agents(tmp_path, "ABC")
    peer(a, b)
    peer(a, c)
    yield a, b, c
    for agent in (a, b, c):
        agent.ctx.store.dispose()


def test_peer_gets_a_slice_of_the_pool_the_gateway_and_our_ports(pair):
    a, b = pair
    a.ctx.cloud.ports["net1"] = [
        ("fa:16:3e:00:00:01", "10.10.0.1"),
        ("fa:16:3e:00:00:05", "10.10.0.5"),
    ]
    uid = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]}).json()["id"]
    converge(a, b)
    assert a.user("p1", "GET", f"/v1/expansions/{uid}").json()["status"] == "active"
    spec = b.ctx.cloud.replicas[uid]
    assert (spec.project, spec.network, spec.cidr, spec.gateway) == (
        "A.p1",
        "net1",
        "10.10.0.0/24",
        "10.10.0.1",
    )
    assert spec.remote_ports == (
        ("fa:16:3e:00:00:01", "10.10.0.1"),
        ("fa:16:3e:00:00:05", "10.10.0.5"),
    )
    # B's slice is cut from A's pool: no address can be handed out on both sides
    assert len(spec.pools) == 1
    a_pool = a.ctx.cloud.pools["net1"]
    assert pools.size_of(a_pool) + pools.size_of(spec.pools) == pools.size_of(FULL)
    assert pools.normalize([*a_pool, *spec.pools]) == list(FULL)
    # the replica's local side is the network the cloud made for it
    rep = b.admin("GET", "/v1/replicas").json()[0]
    assert rep["status"] == "active", rep


def test_a_new_port_at_the_origin_reaches_the_peer_and_nothing_else_changes(pair):
    a, b = pair
    uid = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]}).json()["id"]
    converge(a, b)
    slice_before = b.ctx.cloud.replicas[uid].pools
    a.ctx.cloud.ports["net1"].append(("fa:16:3e:00:00:09", "10.10.0.9"))
    converge(a, b)
    spec = b.ctx.cloud.replicas[uid]
    assert spec.remote_ports == (("fa:16:3e:00:00:09", "10.10.0.9"),)
    assert spec.pools == slice_before  # carved once, kept
    assert a.reconcile() == 0 and b.reconcile() == 0


def test_delete_gives_the_slice_back(pair):
    a, b = pair
    uid = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]}).json()["id"]
    converge(a, b)
    assert a.ctx.cloud.pools["net1"] != FULL
    assert a.user("p1", "DELETE", f"/v1/expansions/{uid}").status_code == 202
    converge(a, b)
    assert b.ctx.cloud.replicas == {}
    assert a.ctx.cloud.pools["net1"] == FULL


def test_a_full_pool_is_an_error_that_names_the_network(pair):
    a, b = pair
    a.ctx.cloud.pools["net1"] = (("10.10.0.2", "10.10.0.4"),)
    a.ctx.cloud.ports["net1"] = [("fa:16:3e:00:00:02", "10.10.0.2")]
    uid = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]}).json()["id"]
    converge(a, b)
    exp = a.user("p1", "GET", f"/v1/expansions/{uid}").json()
    assert exp["peers"][0]["status"] == "error"
    assert "net1" in exp["peers"][0]["reason"] and "free block" in exp["peers"][0]["reason"]
    assert b.ctx.cloud.replicas == {}
    assert a.ctx.cloud.pools["net1"] == (("10.10.0.2", "10.10.0.4"),)  # unchanged


def test_a_replica_whose_network_the_peer_cloud_has_not_made_yet_is_pending_not_error(pair):
    """While B's cloud has not made the replica's network, both sides say pending and why
    (an origin that read "error" would give up on an expansion still being made); a network
    the cloud refuses is an error that says the cloud's reason."""
    a, b = pair
    b.ctx.cloud.slow.add("net1")
    uid = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]}).json()["id"]
    converge(a, b)
    peer_b = a.user("p1", "GET", f"/v1/expansions/{uid}").json()["peers"][0]
    assert peer_b["status"] == "pending" and peer_b["vni"] is not None
    assert "waiting for its network in this cloud" in peer_b["reason"]
    replica = b.admin("GET", "/v1/replicas").json()[0]
    assert (replica["status"], replica["reason"]) == (
        "pending",
        "waiting for its network in this cloud",
    )

    b.ctx.cloud.slow.clear()
    b.ctx.cloud.refusing["net1"] = "quota exceeded for networks"
    converge(a, b)
    peer_b = a.user("p1", "GET", f"/v1/expansions/{uid}").json()["peers"][0]
    assert peer_b["status"] == "error" and "quota exceeded" in peer_b["reason"]

    del b.ctx.cloud.refusing["net1"]
    converge(a, b)
    assert a.user("p1", "GET", f"/v1/expansions/{uid}").json()["status"] == "active"


def test_addressing_outside_the_cidr_is_refused_by_the_peer(pair):
    a, b = pair
    body = {
        "project": "p1",
        "network": "net1",
        "cidr": "10.10.0.0/24",
        "addressing": {"gateway": "10.99.0.1", "pools": [], "ports": []},
    }
    r = a.ctx.reconciler.federation.peer(PeerRef("B", f"http://{b.ip}:8700", _peer_key(a, "B")))
    with pytest.raises(PeerError) as exc:
        r.request(
            "PUT",
            "/v1/federation/replicas/0b6f3a52-0000-4000-8000-0000000000ab",
            body,
        )
    assert "addressing.gateway" in str(exc.value)
    assert b.admin("GET", "/v1/replicas").json() == []


def _peer_key(agent, name):
    from sqlalchemy import select

    from intercloud.store import models as m

    with agent.ctx.store.session() as s:
        return s.scalar(select(m.Peer).where(m.Peer.name == name)).key


def test_peer_vms_become_placeholders_at_the_origin_and_at_the_other_members(trio):
    a, b, c = trio
    a.ctx.cloud.ports["net1"] = [("fa:16:3e:00:00:0a", "10.10.0.10")]
    body = {"network": "net1", "peers": ["B", "C"]}
    uid = a.user("p1", "POST", "/v1/expansions", body).json()["id"]
    converge(a, b, c)
    b_vm = ("fa:16:3e:00:00:0b", b.ctx.cloud.replicas[uid].pools[0][1])
    b.ctx.cloud.replica_ports["net1"] = [b_vm]
    converge(a, b, c)
    assert a.ctx.cloud.placeholders["net1"] == [b_vm]
    assert c.ctx.cloud.replicas[uid].remote_ports == tuple(
        sorted([("fa:16:3e:00:00:0a", "10.10.0.10"), b_vm])
    )
    assert b.ctx.cloud.replicas[uid].remote_ports == (("fa:16:3e:00:00:0a", "10.10.0.10"),)
    # the VM goes: its placeholders go everywhere
    b.ctx.cloud.replica_ports["net1"] = []
    converge(a, b, c)
    assert a.ctx.cloud.placeholders["net1"] == []
    assert c.ctx.cloud.replicas[uid].remote_ports == (("fa:16:3e:00:00:0a", "10.10.0.10"),)
    # deleting the expansion leaves no placeholder at the origin
    b.ctx.cloud.replica_ports["net1"] = [b_vm]
    converge(a, b, c)
    assert a.ctx.cloud.placeholders["net1"] == [b_vm]
    a.user("p1", "DELETE", f"/v1/expansions/{uid}")
    converge(a, b, c)
    assert a.ctx.cloud.placeholders["net1"] == []


def test_ports_outside_the_network_or_of_a_stranger_are_refused(trio):
    a, b, c = trio
    uid = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]}).json()["id"]
    converge(a, b)
    path = f"/v1/federation/expansions/{uid}/ports"
    client = b.ctx.reconciler.federation.peer(
        PeerRef("A", f"http://{a.ip}:8700", _peer_key(b, "A"))
    )
    with pytest.raises(PeerError, match="not in 10.10.0.0/24"):
        client.request(
            "PUT",
            path,
            {"ports": [["fa:16:3e:00:00:01", "10.99.0.1"]]},
        )
    with pytest.raises(PeerError, match="no expansion"):
        c.ctx.reconciler.federation.peer(
            PeerRef("A", f"http://{a.ip}:8700", _peer_key(c, "A"))
        ).request("PUT", path, {"ports": []})
    assert a.ctx.cloud.placeholders.get("net1", []) == []


@pytest.mark.parametrize(
    ("addressing", "field", "words"),
    [
        ({"gateway": "10.10.1.1"}, "addressing.gateway", "not in 10.10.0.0/24"),
        ({"pools": [["10.10.0.9", "10.10.0.2"]]}, "addressing.pools", "is after"),
        ({"pools": [["10.10.0.2"]]}, "addressing.pools", "[first, last]"),
        ({"ports": [["zz:16:3e:00:00:01", "10.10.0.5"]]}, "addressing.ports", "invalid MAC"),
        ({"ports": [["fa:16:3e:00:00:01", "10.10.0.300"]]}, "addressing.ports", "invalid IP"),
        ({"routers": []}, "addressing", "gateway, pools and ports"),
    ],
)
def test_bad_addressing_names_the_field(addressing, field, words):
    from intercloud.domain import validation
    from intercloud.errors import Invalid

    with pytest.raises(Invalid) as err:
        validation.addressing(addressing, "10.10.0.0/24")
    assert err.value.field == field and words in err.value.message


def test_addressing_is_normalized():
    from intercloud.domain import validation

    got = validation.addressing(
        {"gateway": "10.10.0.1", "ports": [["FA:16:3E:00:00:0B", "10.10.0.9"]]}, "10.10.0.0/24"
    )
    assert got == {
        "gateway": "10.10.0.1",
        "pools": [],
        "ports": [["fa:16:3e:00:00:0b", "10.10.0.9"]],
    }
