"""The service side of issue 13 (findings 9, 12 and 13), in one process with real API and store:
requested VNIs stay within the agent's range and a refusal says nothing about who holds one;
replicas per peer are bounded whatever the agreement allows; a peer's network is found by
(origin, uid); replicated project names cannot be squatted across dotted peer names; reported
ports stay within the slice of the pool given to the reporting peer."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import select

from intercloud.domain import vni as vnis
from intercloud.errors import Conflict, PeerError
from intercloud.federation.peers import Federation, PeerRef
from intercloud.store import models as m
from tests.functional.federation_harness import Router, converge, make_agent, peer

MAC = "02:00:00:00:00:01"


def fed(router, agents, caller: str, callee: str, method: str, path: str, body=None):
    """A signed federation call from `caller` to `callee`, as the caller's agent makes it."""
    with agents[callee].ctx.store.session() as s:
        key = s.scalar(select(m.Peer.key).where(m.Peer.name == caller))
    federation = Federation(caller, transport=router, plain_http=True)
    callee_ref = PeerRef(callee, f"http://{agents[callee].ip}:8700", key)
    return federation.peer(callee_ref).request(method, path, body)


def refused(router, agents, caller, callee, method, path, body=None) -> PeerError:
    with pytest.raises(PeerError) as exc:
        fed(router, agents, caller, callee, method, path, body)
    return exc.value


@pytest.fixture
def pair(tmp_path):
    router = Router()
    a = make_agent(tmp_path, router, "A", 1)
    b = make_agent(tmp_path, router, "B", 2)
    peer(a, b)
    yield {"A": a, "B": b}, router
    for agent in (a, b):
        agent.ctx.store.dispose()


def replica_body(project="p1", network="net1", members=None) -> dict:
    body = {"project": project, "network": network, "cidr": "10.10.0.0/24"}
    if members is not None:
        body["members"] = members
    return body


def expansion_count(agent) -> int:
    with agent.ctx.store.session() as s:
        return len(list(s.scalars(select(m.Expansion))))


# -- finding 9: requested VNIs within vni_min-vni_max -------------------------------------------


def test_a_user_vni_outside_the_agents_range_is_422_naming_vni(pair):
    agents, _ = pair
    a = agents["A"]
    a.ctx.cfg.dataplane.vni_min, a.ctx.cfg.dataplane.vni_max = 100, 200
    for vni in (99, 201, 16777215):
        r = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"], "vni": vni})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == "vni"
        assert "100 to 200" in r.json()["error"]["message"]
    assert expansion_count(a) == 0  # nothing made
    r = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"], "vni": 150})
    assert r.status_code == 201, r.text


def test_a_peer_vni_outside_our_range_is_refused_and_nothing_taken(pair):
    agents, router = pair
    b = agents["B"]
    b.ctx.cfg.dataplane.vni_min, b.ctx.cfg.dataplane.vni_max = 100, 200
    uid = str(uuid.uuid4())
    fed(router, agents, "A", "B", "PUT", f"/v1/federation/replicas/{uid}", replica_body())
    for vni in (5, 201, 16777215):
        err = refused(router, agents, "A", "B", "PUT", f"/v1/federation/replicas/{uid}/vni",
                      {"vni": vni, "exclude": []})  # fmt: skip
        assert err.status in (409, 422) and "vni: " in err.message, err.message
    with b.ctx.store.session() as s:
        assert list(s.scalars(select(m.VniAllocation))) == []
        assert s.scalars(select(m.Replica)).one().vni is None
    ok = fed(router, agents, "A", "B", "PUT", f"/v1/federation/replicas/{uid}/vni",
             {"vni": 150, "exclude": []})  # fmt: skip
    assert ok == {"vni": 150}
    # without a request: the lowest free within the range, outside what the caller excludes
    uid2 = str(uuid.uuid4())
    fed(router, agents, "A", "B", "PUT", f"/v1/federation/replicas/{uid2}", replica_body("p2"))
    got = fed(router, agents, "A", "B", "PUT", f"/v1/federation/replicas/{uid2}/vni",
              {"exclude": [100, 101]})  # fmt: skip
    assert got == {"vni": 102}


def test_the_service_refuses_an_out_of_range_request_whatever_the_api_checked():
    """Defence in depth: the agreement itself never hands out a VNI outside low-high."""
    for requested in (99, 201):
        with pytest.raises(Conflict, match=f"vni: {requested} is not available"):
            vnis.agree([], [], requested, 100, 200)
    with pytest.raises(Conflict) as held:
        vnis.agree([150], [], 150, 100, 200)
    assert held.value.message.replace("150", "N") == vnis.unavailable(99).message.replace("99", "N")
    assert vnis.agree([], [100], None, 100, 200) == 101


def test_an_agreed_vni_outside_a_narrowed_range_is_agreed_again(pair):
    agents, router = pair
    b = agents["B"]
    uid = str(uuid.uuid4())
    fed(router, agents, "A", "B", "PUT", f"/v1/federation/replicas/{uid}", replica_body())
    assert fed(router, agents, "A", "B", "PUT", f"/v1/federation/replicas/{uid}/vni",
               {"exclude": []}) == {"vni": 1}  # fmt: skip
    b.ctx.cfg.dataplane.vni_min = 500
    assert fed(router, agents, "A", "B", "PUT", f"/v1/federation/replicas/{uid}/vni",
               {"exclude": []}) == {"vni": 500}  # fmt: skip


# -- finding 12 (VNI half): no oracle of who holds a VNI ----------------------------------------


def _shape(message: str) -> str:
    return re.sub(r"\d+", "N", message)


def test_a_taken_vni_answers_the_same_whoever_holds_it(pair):
    agents, router = pair
    a, b = agents["A"], agents["B"]
    mine = {"network": "net1", "peers": ["B"], "vni": 77}  # A's p1 holds 77 on both sides
    assert a.user("p1", "POST", "/v1/expansions", mine).status_code == 201
    theirs = {"network": "net2", "peers": ["A"], "vni": 88}  # B's p2 holds 88 (a replica at A)
    assert b.user("p2", "POST", "/v1/expansions", theirs).status_code == 201
    converge(a, b)
    with a.ctx.store.session() as s:
        assert sorted(s.scalars(select(m.VniAllocation.vni))) == [77, 88]
    answers = {}
    for vni in (77, 88):  # held by another project here / by a peer's replica here
        r = a.user("p2", "POST", "/v1/expansions", {"network": "net2", "peers": ["B"], "vni": vni})
        assert r.status_code == 409, r.text
        assert r.json()["error"]["field"] == "vni"
        answers[vni] = r.json()["error"]["message"]
    assert _shape(answers[77]) == _shape(answers[88])
    for word in ("in use", "p1", "net1", "B", "replica", "expansion"):
        assert word not in answers[77]
    # a peer asking for either gets that same answer
    uid = str(uuid.uuid4())
    fed(router, agents, "B", "A", "PUT", f"/v1/federation/replicas/{uid}", replica_body("p1"))
    for vni in (77, 88):
        err = refused(router, agents, "B", "A", "PUT", f"/v1/federation/replicas/{uid}/vni",
                      {"vni": vni, "exclude": []})  # fmt: skip
        assert err.status == 409
        assert _shape(answers[77]) in _shape(err.message)
    assert expansion_count(a) == 1  # nothing made


# -- finding 9: replicas per peer ---------------------------------------------------------------


def test_a_peer_allowed_every_project_is_still_bounded_in_replicas(pair):
    agents, router = pair
    b = agents["B"]
    assert b.admin("PATCH", "/v1/agreements/A", {"peer_projects": ["*"]}).is_success
    b.ctx.cfg.agent.max_replicas_per_peer = 3
    uids = [str(uuid.uuid4()) for _ in range(4)]
    for i, uid in enumerate(uids[:3]):  # one project each: the per-project limit never bites
        fed(router, agents, "A", "B", "PUT", f"/v1/federation/replicas/{uid}",
            replica_body(f"q{i}"))  # fmt: skip
    err = refused(router, agents, "A", "B", "PUT", f"/v1/federation/replicas/{uids[3]}",
                  replica_body("q3"))  # fmt: skip
    assert err.status == 409
    assert "limit reached" in err.message and "max_replicas_per_peer = 3" in err.message
    # the ones it has are still answered (idempotent PUT), and a deletion makes room
    fed(router, agents, "A", "B", "PUT", f"/v1/federation/replicas/{uids[0]}", replica_body("q0"))
    fed(router, agents, "A", "B", "DELETE", f"/v1/federation/replicas/{uids[0]}")
    fed(router, agents, "A", "B", "PUT", f"/v1/federation/replicas/{uids[3]}", replica_body("q3"))
    with b.ctx.store.session() as s:
        assert len(list(s.scalars(select(m.Replica)))) == 3
        # the deleted replica's project went with it: no names pile up
        assert sorted(s.scalars(select(m.ReplicatedProject.name))) == ["A.q1", "A.q2", "A.q3"]


# -- finding 13 (a): a peer's network is found by (origin, uid), never uid alone ----------------


@pytest.fixture
def star(tmp_path):
    """B with links to A, C and D (each may replicate any project into B)."""
    router = Router()
    agents = {n: make_agent(tmp_path, router, n, i + 1) for i, n in enumerate("ABCD")}
    for other in "ACD":
        peer(agents["B"], agents[other])
        agents["B"].admin("PATCH", f"/v1/agreements/{other}", {"peer_projects": ["*"]})
    yield agents, router
    for agent in agents.values():
        agent.ctx.store.dispose()


def test_a_direct_tunnel_joins_the_named_origins_network_not_a_same_uid_one(star):
    agents, router = star
    uid = str(uuid.uuid4())
    # D gets in first with a network of the same uid that also names C and B
    fed(router, agents, "D", "B", "PUT", f"/v1/federation/replicas/{uid}",
        replica_body(members=["B", "C", "D"]))  # fmt: skip
    fed(router, agents, "A", "B", "PUT", f"/v1/federation/replicas/{uid}",
        replica_body(members=["A", "B", "C"]))  # fmt: skip
    got = fed(router, agents, "C", "B", "PUT", f"/v1/federation/adjacencies/{uid}",
              {"origin": "A", "exclude": []})  # fmt: skip
    with agents["B"].ctx.store.session() as s:
        adj = s.scalars(select(m.Adjacency)).one()
        assert (adj.replica.peer.name, adj.peer.name, adj.vni) == ("A", "C", got["vni"])
    # the other origin's network of that uid is another network, with a tunnel of its own
    got_d = fed(router, agents, "C", "B", "PUT", f"/v1/federation/adjacencies/{uid}",
                {"origin": "D", "exclude": [got["vni"]]})  # fmt: skip
    with agents["B"].ctx.store.session() as s:
        adjs = {a.replica.peer.name: a.vni for a in s.scalars(select(m.Adjacency))}
    assert adjs == {"A": got["vni"], "D": got_d["vni"]} and got["vni"] != got_d["vni"]
    # an origin with no such network here, or none named: not found / invalid
    err = refused(router, agents, "C", "B", "PUT", f"/v1/federation/adjacencies/{uid}",
                  {"origin": "E", "exclude": []})  # fmt: skip
    assert err.status == 404
    err = refused(router, agents, "C", "B", "PUT", f"/v1/federation/adjacencies/{uid}",
                  {"exclude": []})  # fmt: skip
    assert err.status == 422


# -- finding 13 (b): replicated names across dotted peer names ----------------------------------


@pytest.fixture
def dotted(tmp_path):
    """B peered with `A` and with `A.x`, both allowed every project."""
    router = Router()
    agents = {n: make_agent(tmp_path, router, n, i + 1) for i, n in enumerate(["A", "B", "A.x"])}
    for other in ("A", "A.x"):
        peer(agents["B"], agents[other])
        agents["B"].admin("PATCH", f"/v1/agreements/{other}", {"peer_projects": ["*"]})
    yield agents, router
    for agent in agents.values():
        agent.ctx.store.dispose()


def test_a_project_name_cannot_be_squatted_through_a_dotted_peer_name(dotted):
    agents, router = dotted
    u1, u2, u3 = (str(uuid.uuid4()) for _ in range(3))
    # A's project `x.y` would be `A.x.y`, which reads as A.x's project `y`: refused, even first
    err = refused(router, agents, "A", "B", "PUT", f"/v1/federation/replicas/{u1}",
                  replica_body("x.y"))  # fmt: skip
    assert err.status == 409 and "'A.x.y'" in err.message
    rep = fed(router, agents, "A.x", "B", "PUT", f"/v1/federation/replicas/{u2}", replica_body("y"))
    assert rep["project"] == "A.x.y"
    err = refused(router, agents, "A", "B", "PUT", f"/v1/federation/replicas/{u1}",
                  replica_body("x.y"))  # fmt: skip
    assert err.status == 409
    # other projects of A are not affected
    rep = fed(router, agents, "A", "B", "PUT", f"/v1/federation/replicas/{u3}", replica_body("z.y"))
    assert rep["project"] == "A.z.y"
    with agents["B"].ctx.store.session() as s:
        names = {(r.project.name, r.peer.name) for r in s.scalars(select(m.Replica))}
    assert names == {("A.x.y", "A.x"), ("A.z.y", "A")}


def test_a_name_already_held_is_never_shared(dotted):
    """A name made before the longer peer existed stays its holder's: the newcomer is refused."""
    agents, router = dotted
    b = agents["B"]
    with b.ctx.store.session() as s:  # as if `A.x.y` had been made for A's `x.y` earlier
        a = s.scalar(select(m.Peer).where(m.Peer.name == "A"))
        s.add(m.ReplicatedProject(name="A.x.y", peer_id=a.id, origin_name="x.y"))
    err = refused(router, agents, "A.x", "B", "PUT", f"/v1/federation/replicas/{uuid.uuid4()}",
                  replica_body("y"))  # fmt: skip
    assert err.status == 409 and err.message.count("A.x.y") == 1


# -- finding 13 (c): reported ports within the peer's slice -------------------------------------


def test_reported_ports_must_lie_in_the_slice_given_to_that_peer(pair):
    agents, router = pair
    a = agents["A"]
    uid = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]}).json()["id"]
    path = f"/v1/federation/expansions/{uid}/ports"
    # no slice given (standalone): no address of the network is B's to report
    err = refused(router, agents, "B", "A", "PUT", path, {"ports": [[MAC, "10.10.0.5"]]})
    assert err.status == 422
    with a.ctx.store.session() as s:
        s.scalars(select(m.Target)).one().pool = [["10.10.0.192", "10.10.0.254"]]
    for ip in ("10.10.0.5", "10.10.0.191", "10.10.0.255"):  # in the CIDR, not in B's slice
        err = refused(router, agents, "B", "A", "PUT", path, {"ports": [[MAC, ip]]})
        assert err.status == 422 and ip in err.message, ip
    with a.ctx.store.session() as s:
        assert s.scalars(select(m.Target)).one().peer_ports is None  # nothing stored
    got = fed(router, agents, "B", "A", "PUT", path, {"ports": [[MAC, "10.10.0.192"]]})
    assert got == {"ports": [[MAC, "10.10.0.192"]]}
    assert fed(router, agents, "B", "A", "PUT", path, {"ports": []}) == {"ports": []}
