"""Centralized, mesh and hybrid networks in one process: four agents, real API and store,
fake data plane. A has links to B, C and D; B and C also have a link to each other."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from intercloud.domain import relay
from intercloud.errors import PeerError
from intercloud.federation.client import FederationClient
from intercloud.store import models as m
from tests.unit.federation_harness import Router, make_agent, peer


def test_direct_pairs_need_both_sides():
    assert relay.direct_pairs({"B": ["C"], "C": ["B"], "D": []}) == {frozenset("BC")}
    assert relay.direct_pairs({"B": ["C"], "C": [], "D": ["B"]}) == set()


def test_paths_relay_only_through_the_origin():
    got = relay.paths("A", {"B": ["C", "D"], "C": ["B"], "D": []})
    assert got == [
        {"between": ["A", "B"], "via": None},
        {"between": ["A", "C"], "via": None},
        {"between": ["A", "D"], "via": None},
        {"between": ["B", "C"], "via": None},
        {"between": ["B", "D"], "via": "A"},
        {"between": ["C", "D"], "via": "A"},
    ]


def test_no_relay_drops_both_directions_of_direct_pairs_only():
    ports = {"B": "icv1", "C": "icv2", "D": "icv3"}
    pairs = relay.direct_pairs({"B": ["C"], "C": ["B"], "D": []})
    assert relay.no_relay(ports, pairs) == {("icv1", "icv2"), ("icv2", "icv1")}
    assert relay.no_relay({"B": "icv1"}, pairs) == set()  # C's port not built: relay


@pytest.fixture
def four(tmp_path):
    router = Router()
    agents = {n: make_agent(tmp_path, router, n, i + 1) for i, n in enumerate("ABCD")}
    for x, y in (("A", "B"), ("A", "C"), ("A", "D"), ("B", "C")):
        peer(agents[x], agents[y])
    yield agents, router
    for agent in agents.values():
        agent.ctx.store.dispose()


def converge(agents, rounds: int = 6) -> None:
    for _ in range(rounds):
        for agent in agents.values():
            agent.reconcile()


def expand(agents, peers=("B", "C", "D")) -> str:
    r = agents["A"].user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": list(peers)})
    assert r.status_code == 201, r.text
    converge(agents)
    return r.json()["id"]


def paths(agents, uid: str) -> dict[str, str | None]:
    exp = agents["A"].user("p1", "GET", f"/v1/expansions/{uid}").json()
    assert exp["status"] == "active", exp
    return {"-".join(p["between"]): p["via"] for p in exp["paths"]}


def tunnels(agent) -> dict[str, tuple[str, bool]]:
    """remote address -> (port name, isolated) of an agent's tunnel ports."""
    return {vx.remote: (n, vx.isolated) for n, vx in agent.dataplane.observe("ic").vxlans.items()}


def test_mesh_where_linked_relay_elsewhere(four):
    agents, _ = four
    a, b, c, d = (agents[n] for n in "ABCD")
    uid = expand(agents)
    assert paths(agents, uid) == {
        "A-B": None, "A-C": None, "A-D": None, "B-C": None, "B-D": "A", "C-D": "A",
    }  # fmt: skip
    # B and C: a tunnel to A and one to each other, all isolated (members never relay)
    assert tunnels(b) == {a.ip: (tunnels(b)[a.ip][0], True), c.ip: (tunnels(b)[c.ip][0], True)}
    assert set(tunnels(c)) == {a.ip, b.ip} and all(iso for _, iso in tunnels(c).values())
    assert set(tunnels(d)) == {a.ip}
    # the B-C tunnel has one VNI on both sides, unused by anything else there
    vni_b = b.dataplane.observe("ic").vxlans[tunnels(b)[c.ip][0]].vni
    vni_c = c.dataplane.observe("ic").vxlans[tunnels(c)[b.ip][0]].vni
    assert vni_b == vni_c
    # A relays (ports not isolated) except between B and C
    at_a = tunnels(a)
    assert not any(iso for _, iso in at_a.values())
    pb, pc = at_a[b.ip][0], at_a[c.ip][0]
    assert a.dataplane.observe("ic").no_forward == {(pb, pc), (pc, pb)}
    for agent in agents.values():  # converged: a pass changes nothing
        assert agent.reconcile() == 0


def test_centralized_when_members_have_no_link(four):
    agents, _ = four
    uid = expand(agents, peers=("B", "D"))  # B and D have no link
    assert paths(agents, uid) == {"A-B": None, "A-D": None, "B-D": "A"}
    assert agents["A"].dataplane.observe("ic").no_forward == set()
    assert set(tunnels(agents["B"])) == {agents["A"].ip}


def test_direct_link_down_relays_then_returns(four):
    agents, _ = four
    a, b = agents["A"], agents["B"]
    uid = expand(agents)
    r = b.admin("PATCH", "/v1/links/C", {"enabled": False})
    assert r.status_code == 200, r.text
    converge(agents)
    assert paths(agents, uid)["B-C"] == "A"
    assert a.dataplane.observe("ic").no_forward == set()
    assert set(tunnels(b)) == {a.ip}
    b.admin("PATCH", "/v1/links/C", {"enabled": True})
    converge(agents)
    assert paths(agents, uid)["B-C"] is None
    assert len(a.dataplane.observe("ic").no_forward) == 2


def test_delete_removes_every_direct_tunnel_and_vni(four):
    agents, _ = four
    uid = expand(agents)
    assert agents["A"].user("p1", "DELETE", f"/v1/expansions/{uid}").status_code == 202
    converge(agents)
    for agent in agents.values():
        state = agent.dataplane.observe("ic")
        assert state.interface_names() == set() and state.no_forward == set(), agent.name
        with agent.ctx.store.session() as s:
            assert s.scalars(select(m.VniAllocation)).all() == []
            assert s.scalars(select(m.Adjacency)).all() == []


def _call(router, agents, caller: str, callee: str, method: str, path: str, body=None):
    with agents[callee].ctx.store.session() as s:
        key = s.scalar(select(m.Peer.key).where(m.Peer.name == caller))
    client = FederationClient(caller, transport=router)
    return client.call(callee, f"http://{agents[callee].ip}:8700", key, method, path, body)


def test_members_act_only_within_the_network(four):
    agents, router = four
    uid = expand(agents, peers=("B", "D"))  # C is not a member
    with pytest.raises(PeerError) as exc:  # C asks B for a tunnel of a network not spanning C
        _call(router, agents, "C", "B", "PUT", f"/v1/federation/adjacencies/{uid}", {})
    assert exc.value.peer_status == 404
    with pytest.raises(PeerError) as exc:  # C reports for an expansion that does not reach it
        _call(router, agents, "C", "A", "PUT", f"/v1/federation/expansions/{uid}/direct",
              {"direct": []})  # fmt: skip
    assert exc.value.peer_status == 404
    with pytest.raises(PeerError) as exc:  # B claims a cloud outside the network
        _call(router, agents, "B", "A", "PUT", f"/v1/federation/expansions/{uid}/direct",
              {"direct": ["C"]})  # fmt: skip
    assert exc.value.peer_status == 422 and "direct" in exc.value.message
    assert paths(agents, uid) == {"A-B": None, "A-D": None, "B-D": "A"}  # unchanged


def test_a_direct_tunnel_vni_taken_meanwhile_is_agreed_again(four):
    from intercloud.reconciler import mesh

    agents, _ = four
    b = agents["B"]
    expand(agents)
    with b.ctx.store.session() as s:
        adj = s.scalars(select(m.Adjacency)).one()
        peer = adj.peer
        work = mesh.AdjacencyWork(adj.id, adj.replica.uid, peer.name, peer.federation_url,
                                  peer.key, adj.vni)  # fmt: skip
        s.add(m.VniAllocation(vni=4000, owner="t:9999"))

    class AnswersTakenVni:  # the peer's answer races with another allocation here
        def call(self, *args, **kwargs):
            return {"vni": 4000}

    assert mesh.agree(b.ctx.store, AnswersTakenVni(), work) is False  # no exception
    with b.ctx.store.session() as s:
        assert s.get(m.VniAllocation, 4000).owner == "t:9999"
        assert s.get(m.Adjacency, work.adjacency_id).vni == work.vni  # unchanged
