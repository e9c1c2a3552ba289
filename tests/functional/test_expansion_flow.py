"""End-to-end control plane in one process: two agents, real API and store, fake data plane."""

from __future__ import annotations

import pytest

from tests.functional.federation_harness import Router, converge, make_agent, peer


@pytest.fixture
def pair(tmp_path, databases):
    """Runs every test once on SQLite and once on PostgreSQL."""
    router = Router()
    a = make_agent(tmp_path, router, "A", 1, databases())
    b = make_agent(tmp_path, router, "B", 2, databases())
    peer(a, b)
    yield a, b, router
    for agent in (a, b):
        agent.ctx.store.dispose()


def test_expand_builds_both_sides_and_goes_active(pair):
    a, b, _ = pair
    r = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]})
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    converge(a, b)
    exp = a.user("p1", "GET", f"/v1/expansions/{uid}").json()
    assert exp["status"] == "active", exp
    vni = exp["peers"][0]["vni"]
    assert vni is not None
    assert f"icv{vni}" in a.dataplane.observe().state.vxlans
    reps = b.admin("GET", "/v1/replicas").json()
    assert [(x["peer"], x["network"], x["vni"], x["status"]) for x in reps] == [
        ("A", "net1", vni, "active")
    ]
    assert reps[0]["project"] == "A.p1"
    b_vx = b.dataplane.observe().state.vxlans[f"icv{vni}"]
    assert (b_vx.local, b_vx.remote) == (b.ip, a.ip)


def test_second_pass_changes_nothing(pair):
    a, b, _ = pair
    a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]})
    converge(a, b)
    a.dataplane.calls.clear()
    assert a.reconcile() == 0
    assert b.reconcile() == 0


def test_create_twice_is_idempotent(pair):
    a, _, _ = pair
    body = {"network": "net1", "peers": ["B"]}
    first = a.user("p1", "POST", "/v1/expansions", body)
    second = a.user("p1", "POST", "/v1/expansions", body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert len(a.user("p1", "GET", "/v1/expansions").json()) == 1


def test_delete_removes_both_sides(pair):
    a, b, _ = pair
    uid = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]}).json()["id"]
    converge(a, b)
    assert a.user("p1", "DELETE", f"/v1/expansions/{uid}").status_code == 202
    converge(a, b)
    assert a.user("p1", "GET", f"/v1/expansions/{uid}").status_code == 404
    assert b.admin("GET", "/v1/replicas").json() == []
    assert a.dataplane.observe().state.interface_names() == set()
    assert b.dataplane.observe().state.interface_names() == set()


def test_overlapping_projects_get_distinct_vnis(pair):
    a, b, _ = pair
    u1 = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]}).json()["id"]
    u2 = a.user("p2", "POST", "/v1/expansions", {"network": "net2", "peers": ["B"]}).json()["id"]
    converge(a, b)
    v1 = a.user("p1", "GET", f"/v1/expansions/{u1}").json()["peers"][0]["vni"]
    v2 = a.user("p2", "GET", f"/v1/expansions/{u2}").json()["peers"][0]["vni"]
    assert v1 != v2
    # each project sees only its own
    assert a.user("p1", "GET", f"/v1/expansions/{u2}").status_code == 404


def test_unreachable_peer_reports_error_then_recovers(pair):
    a, b, router = pair
    router.down.add(b.ip)
    uid = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]}).json()["id"]
    a.reconcile()
    exp = a.user("p1", "GET", f"/v1/expansions/{uid}").json()
    assert exp["peers"][0]["status"] == "error"
    assert "unreachable" in exp["peers"][0]["reason"]
    assert a.admin("GET", "/v1/links/B").json()["status"]["state"] == "down"
    router.down.clear()
    converge(a, b)
    assert a.user("p1", "GET", f"/v1/expansions/{uid}").json()["status"] == "active"


def test_per_project_limit_applies_on_both_sides(pair):
    a, b, _ = pair
    # A lets p1 make 5 expansions to B, but B accepts only 1 replica of A's p1
    assert b.admin("PATCH", "/v1/agreements/A", {"max_expansions_per_project": 1}).is_success
    first = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]})
    converge(a, b)
    assert a.user("p1", "GET", f"/v1/expansions/{first.json()['id']}").json()["status"] == "active"
    # a second network of p1 in A: add one by hand to the cloud driver's list
    from intercloud.drivers.cloud.base import Network

    a.ctx.cloud.add_network(Network("net3", "p1", "10.30.0.0/24", "tn-net1"))
    second = a.user("p1", "POST", "/v1/expansions", {"network": "net3", "peers": ["B"]})
    assert second.status_code == 201
    converge(a, b)
    peer_status = a.user("p1", "GET", f"/v1/expansions/{second.json()['id']}").json()["peers"][0]
    assert peer_status["status"] == "error"
    assert "limit of 1" in peer_status["reason"]
    assert len(b.admin("GET", "/v1/replicas").json()) == 1
    # and A's own limit refuses at once
    assert a.admin("PATCH", "/v1/agreements/B", {"max_expansions_per_project": 2}).is_success
    a.ctx.cloud.add_network(Network("net4", "p1", "10.40.0.0/24", "tn-net1"))
    third = a.user("p1", "POST", "/v1/expansions", {"network": "net4", "peers": ["B"]})
    assert third.status_code == 409
    assert third.json()["error"]["field"] == "peers"


def test_reads_are_kept_until_a_write_of_anyone(pair):
    """GETs are answered from the read cache (api/reads.py) while nothing is written; a user's
    POST, the reconciler's status change and an admin's change each show in the next GET."""
    a, b, _ = pair
    reads = a.http.app.state.reads
    assert a.user("p1", "GET", "/v1/expansions").json() == []
    hits = reads.hits
    assert a.user("p1", "GET", "/v1/expansions").json() == []
    assert reads.hits == hits + 1
    uid = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]}).json()["id"]
    listed = a.user("p1", "GET", "/v1/expansions").json()  # the user's own write
    assert [(e["id"], e["status"]) for e in listed] == [(uid, "pending")]
    assert a.user("p2", "GET", "/v1/expansions").json() == []  # per project
    converge(a, b)  # the reconciler's writes
    assert a.user("p1", "GET", f"/v1/expansions/{uid}").json()["status"] == "active"
    assert a.user("p1", "GET", "/v1/expansions").json()[0]["status"] == "active"
    assert a.user("p2", "GET", f"/v1/expansions/{uid}").status_code == 404  # not cached
    before = a.admin("GET", "/v1/agreements").json()
    r = a.admin("PATCH", "/v1/agreements/B", {"max_expansions_per_project": 7})
    assert r.status_code == 200, r.text
    after = a.admin("GET", "/v1/agreements").json()
    assert before[0]["max_expansions_per_project"] != 7
    assert after[0]["max_expansions_per_project"] == 7
