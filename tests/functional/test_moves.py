"""A VM's port that moves between the clouds of an expanded network (live migration), with the
in-process agents of test_openstack_flow and a cloud that moves ports as the OpenStack driver
does: the placeholder in the destination gives way to the real port, the old port goes at the
source; the agents swap the placeholders, the origin sees the move, forgets where the MAC was
learned and asks every member to do the same. (The placeholder swap on a real Neutron, and
its refusals, are in tests/integration/test_openstack_moves.py.)"""

from __future__ import annotations

import pytest

from intercloud.errors import Conflict
from tests.functional.federation_harness import Router, make_agent, peer
from tests.functional.test_openstack_flow import AddressingCloud, converge

VM = ("fa:16:3e:00:00:0a", "10.10.0.10")


class MovingCloud(AddressingCloud):
    def receive_port(self, network_id: str, mac: str, ip: str) -> dict[str, str]:
        """The network is named by its bridge here (tn-<network>)."""
        net = network_id.removeprefix("tn-")
        held = self.placeholders.get(net, []) + [
            tuple(p) for w in self.replicas.values() if w.network == net for p in w.remote_ports
        ]
        if (mac, ip) not in held:
            raise Conflict("mac: nothing to move", field="mac")
        if net in self.replica_ports:
            self.replica_ports[net].append((mac, ip))
        elif any(w.network == net for w in self.replicas.values()):
            self.replica_ports[net] = [(mac, ip)]
        else:
            self.ports[net].append((mac, ip))
        return {"mac": mac, "ip": ip}


@pytest.fixture
def trio(tmp_path):
    router = Router()
    made = [make_agent(tmp_path, router, n, i) for i, n in enumerate("ABC", 1)]
    for agent in made:
        agent.ctx.cloud = agent.ctx.reconciler.cloud = MovingCloud(agent.ctx.cfg)
    a, b, c = made
    peer(a, b)
    peer(a, c)
    yield a, b, c
    for agent in made:
        agent.ctx.store.dispose()


def flushed(agent) -> list[str]:
    calls = [c for c in agent.dataplane.calls if c.startswith("flush_learned")]
    agent.dataplane.calls.clear()
    return calls


def test_a_vm_moves_a_to_b_to_a_then_to_c(trio):
    a, b, c = trio
    a.ctx.cloud.ports["net1"] = [VM]
    body = {"network": "net1", "peers": ["B", "C"]}
    uid = a.user("p1", "POST", "/v1/expansions", body).json()["id"]
    converge(a, b, c)
    assert VM in b.ctx.cloud.replicas[uid].remote_ports  # B and C hold a placeholder
    assert VM in c.ctx.cloud.replicas[uid].remote_ports
    for agent in (a, b, c):
        flushed(agent)

    # A -> B: the port arrives in B (its placeholder gives way), then goes in A
    r = b.admin("POST", "/v1/moves", {"network": "tn-net1", "mac": VM[0], "ip": VM[1]})
    assert r.status_code == 201, r.text
    converge(a, b, c)  # B tells A of its new port (the old one is still there)
    a.ctx.cloud.ports["net1"].remove(VM)
    converge(a, b, c)
    assert VM in a.ctx.cloud.placeholders["net1"]  # A now stands in for it
    assert VM not in b.ctx.cloud.replicas[uid].remote_ports  # B has the real port
    assert VM in c.ctx.cloud.replicas[uid].remote_ports  # C still admits it
    assert flushed(a) and flushed(b) and flushed(c)  # every member forgot where it was
    [move] = a.user("p1", "GET", f"/v1/expansions/{uid}/moves").json()
    assert (move["mac"], move["ip"], move["from"], move["to"]) == (*VM, "A", "B")

    # B -> A: back home
    a.admin("POST", "/v1/moves", {"network": "tn-net1", "mac": VM[0], "ip": VM[1]})
    a.ctx.cloud.placeholders["net1"].remove(VM)
    converge(a, b, c)
    b.ctx.cloud.replica_ports["net1"].remove(VM)
    converge(a, b, c)
    assert VM not in a.ctx.cloud.placeholders.get("net1", [])
    assert VM in b.ctx.cloud.replicas[uid].remote_ports
    moves = a.user("p1", "GET", f"/v1/expansions/{uid}/moves").json()
    assert [(m["from"], m["to"]) for m in moves] == [("A", "B"), ("B", "A")]

    # A -> C
    c.admin("POST", "/v1/moves", {"network": "tn-net1", "mac": VM[0], "ip": VM[1]})
    converge(a, b, c)
    a.ctx.cloud.ports["net1"].remove(VM)
    converge(a, b, c)
    assert VM in a.ctx.cloud.placeholders["net1"]
    assert VM in b.ctx.cloud.replicas[uid].remote_ports
    assert VM not in c.ctx.cloud.replicas[uid].remote_ports
    moves = a.user("p1", "GET", f"/v1/expansions/{uid}/moves").json()
    assert moves[-1]["to"] == "C"
    # converged: nothing more to do
    assert a.reconcile() == 0 and b.reconcile() == 0 and c.reconcile() == 0

    # the VM is deleted in C: its placeholders go everywhere
    c.ctx.cloud.replica_ports["net1"].remove(VM)
    converge(a, b, c)
    assert VM not in a.ctx.cloud.placeholders.get("net1", [])
    assert VM not in b.ctx.cloud.replicas[uid].remote_ports


def test_refusals_name_the_field(trio):
    a, _, _ = trio
    for body, field in (
        ({"network": "tn net1;", "mac": VM[0], "ip": VM[1]}, "network"),
        ({"network": "6e3f1a00-0000-4000-8000-0000000001aa", "mac": "x", "ip": VM[1]}, "mac"),
        (
            {"network": "6e3f1a00-0000-4000-8000-0000000001aa", "mac": "01:00:5e:00:00:01"}
            | {"ip": VM[1]},
            "mac",
        ),
        ({"network": "6e3f1a00-0000-4000-8000-0000000001aa", "mac": VM[0], "ip": "1"}, "ip"),
    ):
        r = a.admin("POST", "/v1/moves", body)
        assert r.status_code == 422, r.text
        assert field in r.text, r.text
    # a project token is not enough
    r = a.user("p1", "POST", "/v1/moves", {"network": "tn-net1", "mac": VM[0], "ip": VM[1]})
    assert r.status_code in (401, 403)
