"""Centralized, mesh and hybrid networks in one process: four agents, real API and store,
fake data plane. A has links to B, C and D; B and C also have a link to each other."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from intercloud.domain import relay
from intercloud.errors import PeerError
from intercloud.federation.peers import Federation, PeerRef
from intercloud.store import models as m
from tests.functional.federation_harness import Router, make_agent, peer


def test_direct_pairs_need_both_sides():
    assert relay.direct_pairs({"B": ["C"], "C": ["B"], "D": []}) == {frozenset("BC")}
    assert relay.direct_pairs({"B": ["C"], "C": [], "D": ["B"]}) == set()


def edges(*pairs: str) -> list[frozenset[str]]:
    return [frozenset(p) for p in pairs]


def routes(plan: relay.Routes) -> dict[str, str | None]:
    out = {}
    for p in plan.paths:
        out["-".join(p["between"])] = (
            "unreachable" if p["state"] == "unreachable" else ",".join(p["via"]) or None
        )
    return out


def test_origin_relays_pairs_without_a_link_of_their_own():
    plan = relay.plan("A", "BCD", edges("AB", "AC", "AD", "BC"))
    assert routes(plan) == {
        "A-B": None, "A-C": None, "A-D": None, "B-C": None, "B-D": "A", "C-D": "A",
    }  # fmt: skip
    assert plan.forward == {
        "A": {("B", "D"), ("D", "B"), ("C", "D"), ("D", "C")},
        "B": set(), "C": set(), "D": set(),
    }  # fmt: skip


def test_another_member_relays_when_the_origins_own_link_is_down():
    # A-C is down: B (linked to both) relays A-C, and C-D chains through B then A
    plan = relay.plan("A", "BCD", edges("AB", "AD", "BC"))
    assert routes(plan) == {
        "A-B": None, "A-C": "B", "A-D": None, "B-C": None, "B-D": "A", "C-D": "B,A",
    }  # fmt: skip
    assert plan.forward["B"] == {("A", "C"), ("C", "A")}
    assert plan.forward["A"] == {("B", "D"), ("D", "B")}
    assert plan.forward["C"] == plan.forward["D"] == set()


def test_a_relay_that_would_deliver_twice_is_not_used():
    # E hears C directly; D relaying A-E would also hand E what C sends through B, A, D
    plan = relay.plan("A", "BCDE", edges("AB", "AD", "BC", "CE", "DE"))
    got = routes(plan)
    assert got["A-E"] == "unreachable" and got["C-E"] is None
    for source in "ABCDE":  # nobody receives anything twice
        adjacent = {n: set() for n in "ABCDE"}
        for a, b in ("AB", "AD", "BC", "CE", "DE"):
            adjacent[a].add(b)
            adjacent[b].add(a)
        forward = {n: set(p) for n, p in plan.forward.items()}
        assert relay._deliveries(source, adjacent, forward) is not None


def test_nobody_reachable_without_edges():
    assert routes(relay.plan("A", "B", [])) == {"A-B": "unreachable"}


def test_no_forward_drops_every_pair_but_the_relayed_ones():
    ports = {"A": "icv1", "C": "icv2", "D": "icv3"}
    assert relay.no_forward(ports, {("A", "C"), ("C", "A")}) == {
        ("icv1", "icv3"), ("icv3", "icv1"), ("icv2", "icv3"), ("icv3", "icv2"),
    }  # fmt: skip


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
    return {"-".join(p["between"]): ",".join(p["via"]) or None for p in exp["paths"]}


def tunnels(agent) -> dict[str, tuple[str, bool]]:
    """remote address -> (port name, isolated) of an agent's tunnel ports."""
    return {vx.remote: (n, vx.isolated) for n, vx in agent.dataplane.observe().state.vxlans.items()}


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
    vni_b = b.dataplane.observe().state.vxlans[tunnels(b)[c.ip][0]].vni
    vni_c = c.dataplane.observe().state.vxlans[tunnels(c)[b.ip][0]].vni
    assert vni_b == vni_c
    # A relays (ports not isolated) except between B and C
    at_a = tunnels(a)
    assert not any(iso for _, iso in at_a.values())
    pb, pc = at_a[b.ip][0], at_a[c.ip][0]
    assert a.dataplane.observe().state.no_forward == {(pb, pc), (pc, pb)}
    for agent in agents.values():  # converged: a pass changes nothing
        assert agent.reconcile() == 0


def test_centralized_when_members_have_no_link(four):
    agents, _ = four
    uid = expand(agents, peers=("B", "D"))  # B and D have no link
    assert paths(agents, uid) == {"A-B": None, "A-D": None, "B-D": "A"}
    assert agents["A"].dataplane.observe().state.no_forward == set()
    assert set(tunnels(agents["B"])) == {agents["A"].ip}


def test_direct_link_down_relays_then_returns(four):
    agents, _ = four
    a, b = agents["A"], agents["B"]
    uid = expand(agents)
    r = b.admin("PATCH", "/v1/links/C", {"enabled": False})
    assert r.status_code == 200, r.text
    converge(agents)
    assert paths(agents, uid)["B-C"] == "A"
    assert a.dataplane.observe().state.no_forward == set()
    assert set(tunnels(b)) == {a.ip}
    b.admin("PATCH", "/v1/links/C", {"enabled": True})
    converge(agents)
    assert paths(agents, uid)["B-C"] is None
    assert len(a.dataplane.observe().state.no_forward) == 2


def forget_health(agents) -> None:
    """Links are health-checked at most every HEALTH_FRESH: make the next pass ask again."""
    for agent in agents.values():
        agent.ctx.reconciler.memory.healthy_at.clear()


def test_origin_link_down_another_member_relays_then_direct_again(four):
    agents, router = four
    a, b, c, d = (agents[n] for n in "ABCD")
    uid = expand(agents)
    mesh = paths(agents, uid)
    port_b = {remote: name for remote, (name, _) in tunnels(b).items()}
    router.cut.add(frozenset("AC"))  # A and C no longer reach each other; B reaches both
    forget_health(agents)
    converge(agents)
    assert paths(agents, uid) == dict(mesh, **{"A-C": "B", "C-D": "B,A"})
    exp = a.user("p1", "GET", f"/v1/expansions/{uid}").json()
    to_c = next(p for p in exp["peers"] if p["peer"] == "C")
    assert to_c["status"] == "active" and "through B" in to_c["reason"], to_c
    # A's own tunnel to C is down (B relays), B forwards A<->C and nothing else
    assert set(tunnels(a)) == {b.ip, d.ip}
    assert not any(iso for _, iso in tunnels(b).values())
    pa, pc = port_b[a.ip], port_b[c.ip]
    assert b.dataplane.observe().state.no_forward == set()  # its only two ports: A and C
    assert tunnels(b) == {a.ip: (pa, False), c.ip: (pc, False)}
    # A relays B<->D as before, so C's traffic reaches D through B then A
    at_a = tunnels(a)
    assert a.dataplane.observe().state.no_forward == set()
    assert set(at_a) == {b.ip, d.ip} and not any(iso for _, iso in at_a.values())
    for agent in agents.values():  # settled: a pass changes nothing
        assert agent.reconcile() == 0, agent.name

    router.cut.clear()
    forget_health(agents)
    # A rebuilds its own tunnel to C only once B's data plane stopped relaying A<->C
    a.reconcile()
    assert set(tunnels(a)) == {b.ip, d.ip}  # B said it still applies A>C: keep it down
    assert not any(iso for _, iso in tunnels(b).values())
    b.reconcile()
    assert all(iso for _, iso in tunnels(b).values())  # B stopped relaying
    a.reconcile()
    assert set(tunnels(a)) == {b.ip, c.ip, d.ip}
    converge(agents)
    assert paths(agents, uid) == mesh
    assert set(tunnels(a)) == {b.ip, c.ip, d.ip}
    assert all(iso for _, iso in tunnels(b).values())  # B relays nothing again
    to_c = next(
        p for p in a.user("p1", "GET", f"/v1/expansions/{uid}").json()["peers"] if p["peer"] == "C"
    )
    assert to_c["status"] == "active" and to_c["reason"] == "", to_c
    with a.ctx.store.session() as s:
        assert all(not t.relays_sent for t in s.scalars(select(m.Target)))
    for agent in agents.values():
        assert agent.reconcile() == 0, agent.name


def test_relays_are_only_between_other_members_of_the_network(four):
    agents, router = four
    uid = expand(agents)
    for body, why in (
        ({"relays": [["A", "E"]]}, "E not a member"),
        ({"relays": [["A", "B"]]}, "B not a member"),  # B is the callee itself
        ({"relays": [["A", "A"]]}, "two different members"),
        ({"relays": "A,C"}, "relays: Input should be a valid list"),
    ):
        with pytest.raises(PeerError) as err:
            _call(router, agents, "A", "B", "PUT", f"/v1/federation/replicas/{uid}/relays", body)
        assert err.value.status == 422 and why in err.value.message, err.value.message
    with pytest.raises(PeerError) as err:  # only the origin may ask
        _call(router, agents, "C", "B", "PUT", f"/v1/federation/replicas/{uid}/relays",
              {"relays": [["A", "C"]]})  # fmt: skip
    assert err.value.status == 404
    with agents["B"].ctx.store.session() as s:
        assert all(not r.relays for r in s.scalars(select(m.Replica)))


def test_delete_removes_every_direct_tunnel_and_vni(four):
    agents, _ = four
    uid = expand(agents)
    assert agents["A"].user("p1", "DELETE", f"/v1/expansions/{uid}").status_code == 202
    converge(agents)
    for agent in agents.values():
        state = agent.dataplane.observe().state
        assert state.interface_names() == set() and state.no_forward == set(), agent.name
        with agent.ctx.store.session() as s:
            assert s.scalars(select(m.VniAllocation)).all() == []
            assert s.scalars(select(m.Adjacency)).all() == []


def _call(router, agents, caller: str, callee: str, method: str, path: str, body=None):
    with agents[callee].ctx.store.session() as s:
        key = s.scalar(select(m.Peer.key).where(m.Peer.name == caller))
    federation = Federation(caller, transport=router, plain_http=True)
    callee_ref = PeerRef(callee, f"http://{agents[callee].ip}:8700", key)
    return federation.peer(callee_ref).request(method, path, body)


def test_members_act_only_within_the_network(four):
    agents, router = four
    uid = expand(agents, peers=("B", "D"))  # C is not a member
    with pytest.raises(PeerError) as exc:  # C asks B for a tunnel of a network not spanning C
        _call(router, agents, "C", "B", "PUT", f"/v1/federation/adjacencies/{uid}",
              {"origin": "A"})  # fmt: skip
    assert exc.value.status == 404
    with pytest.raises(PeerError) as exc:  # C reports for an expansion that does not reach it
        _call(router, agents, "C", "A", "PUT", f"/v1/federation/expansions/{uid}/direct",
              {"direct": []})  # fmt: skip
    assert exc.value.status == 404
    with pytest.raises(PeerError) as exc:  # B claims a cloud outside the network
        _call(router, agents, "B", "A", "PUT", f"/v1/federation/expansions/{uid}/direct",
              {"direct": ["C"]})  # fmt: skip
    assert exc.value.status == 422 and "direct" in exc.value.message
    assert paths(agents, uid) == {"A-B": None, "A-D": None, "B-D": "A"}  # unchanged


def test_a_direct_tunnel_vni_taken_meanwhile_is_agreed_again(four):
    from intercloud.reconciler import members

    agents, _ = four
    b = agents["B"]
    expand(agents)
    with b.ctx.store.session() as s:
        adj = s.scalars(select(m.Adjacency)).one()
        peer = adj.peer
        work = members.AdjacencyWork(adj.id, adj.replica.uid, adj.replica.peer.name,
                                     PeerRef(peer.name, peer.federation_url, peer.key),
                                     adj.vni)  # fmt: skip
        s.add(m.VniAllocation(vni=4000, owner="t:9999"))

    class AnswersTakenVni:  # the peer's answer races with another allocation here
        def peer(self, ref):
            return self

        def agree_adjacency(self, *args, **kwargs):
            return 4000

    assert members.agree(b.ctx.store, AnswersTakenVni(), work) is False  # no exception
    with b.ctx.store.session() as s:
        assert s.get(m.VniAllocation, 4000).owner == "t:9999"
        assert s.get(m.Adjacency, work.adjacency_id).vni == work.vni  # unchanged
