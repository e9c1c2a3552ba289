"""The status phase and the views with a prober that the test drives (drivers/probe/fake.py):
the reconciler tracks exactly the tunnel ports it built; a port whose probes went silent turns
its expansion (origin) or replica (peer) to error, and back to active once it answers; ports
that never answered leave the status alone."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from intercloud.domain import probe as p
from intercloud.drivers.probe.fake import FakeProber
from intercloud.reconciler.links import HEALTH_FRESH
from tests.functional.federation_harness import Router, converge, make_agent, peer

BLACK_HOLE = "no frames through the tunnel since"


@pytest.fixture
def routed(tmp_path):
    """A and B peered, each with a prober the test drives (its clock: the wall's), and the
    router between them (`router.down`: an agent that does not answer)."""
    router = Router()
    a = make_agent(tmp_path, router, "A", 1)
    b = make_agent(tmp_path, router, "B", 2)
    peer(a, b)
    probers = {}
    for agent in (a, b):
        prober = FakeProber(now=time.time())
        probers[agent.name] = agent.ctx.reconciler.probes = agent.ctx.probes = prober
    yield a, b, probers, router
    for agent in (a, b):
        agent.ctx.store.dispose()


@pytest.fixture
def pair(routed):
    a, b, probers, _ = routed
    return a, b, probers


def expand(a, b, project="p1", network="net1"):
    r = a.user(project, "POST", "/v1/expansions", {"network": network, "peers": ["B"]})
    assert r.status_code == 201, r.text
    converge(a, b)
    exp = a.user(project, "GET", f"/v1/expansions/{r.json()['id']}").json()
    assert exp["status"] == "active", exp
    return exp


def test_a_silent_tunnel_turns_its_expansion_and_replica_error_and_back(pair):
    a, b, probers = pair
    one, other = expand(a, b, "p1", "net1"), expand(a, b, "p2", "net2")
    ports = {f"icv{e['peers'][0]['vni']}" for e in (one, other)}
    assert probers["A"].tracked == dict.fromkeys(ports, "B")
    assert probers["B"].tracked == dict.fromkeys(ports, "A")
    port = f"icv{one['peers'][0]['vni']}"
    for agent in ("A", "B"):
        for name in ports:
            probers[agent].answer(name, rtt=0.0012, loss=0.1)
    peer_view = a.user("p1", "GET", f"/v1/expansions/{one['id']}").json()["peers"][0]
    assert peer_view["tunnel"]["rtt_ms"] == 1.2 and peer_view["tunnel"]["loss"] == 0.1
    status = a.admin("GET", "/v1/status").json()["probes"]
    assert status["available"] is True
    assert status["peers"] == [
        {
            "peer": "B",
            "tunnels": 2,
            "answering": 2,
            "silent": 0,
            "unanswered": 0,
            "rtt_ms": 1.2,
            "loss": 0.1,
        }
    ]
    assert a.admin("GET", "/v1/topology").json()["links"][0]["rtt_ms"] == 1.2

    since = probers["A"].now - 2 * p.SILENT_AFTER
    for agent in ("A", "B"):
        probers[agent].silence(port, since)
    converge(a, b)
    stamp = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    reason = f"no frames through the tunnel since {stamp}"
    peer_view = a.user("p1", "GET", f"/v1/expansions/{one['id']}").json()["peers"][0]
    assert (peer_view["status"], peer_view["reason"]) == ("error", reason)
    replicas = {r["vni"]: r for r in b.admin("GET", "/v1/replicas").json()}
    assert (
        replicas[one["peers"][0]["vni"]]["status"],
        replicas[one["peers"][0]["vni"]]["reason"],
    ) == (
        "error",
        reason,
    )
    mate = a.user("p2", "GET", f"/v1/expansions/{other['id']}").json()
    assert mate["status"] == "active", mate  # same link, its own tunnel answers

    for agent in ("A", "B"):
        probers[agent].answer(port)
    converge(a, b)
    assert a.user("p1", "GET", f"/v1/expansions/{one['id']}").json()["status"] == "active"
    assert all(r["status"] == "active" for r in b.admin("GET", "/v1/replicas").json())


def test_tunnels_never_answered_leave_the_status_alone_and_deleted_ones_are_untracked(pair):
    a, b, probers = pair
    exp = expand(a, b)
    for prober in probers.values():
        prober.now += 10 * p.GRACE  # long past the grace, never answered (an OVS peer)
    converge(a, b)
    got = a.user("p1", "GET", f"/v1/expansions/{exp['id']}").json()
    assert got["status"] == "active" and got["peers"][0]["tunnel"]["last_answer_at"] is None
    assert a.admin("GET", "/v1/status").json()["probes"]["peers"][0]["unanswered"] == 1
    assert a.user("p1", "DELETE", f"/v1/expansions/{exp['id']}").status_code == 202
    converge(a, b)
    assert probers["A"].tracked == {} and probers["B"].tracked == {}


def test_a_peer_agent_away_flaps_no_status_and_a_peer_gone_for_good_turns_error(routed):
    """A restarts (its API and prober stop, the tunnel still carries the VMs' frames): B sees
    its follower's port silent, but A's link down too; B's replica stays active while A may be
    restarting, and while A's prober resumes once A is back. A peer away past the grace, or a
    silence that begins while the peer answers, is the tunnel's: error."""
    a, b, probers, router = routed
    exp = expand(a, b)
    vni = exp["peers"][0]["vni"]
    port = f"icv{vni}"
    clock = [time.monotonic() + 1000]  # past every check the passes so far remember
    b.ctx.reconciler.clock = lambda: clock[0]
    STEP = HEALTH_FRESH + 1  # each pass asks A again

    def replica() -> tuple[str, str]:
        (got,) = [r for r in b.admin("GET", "/v1/replicas").json() if r["vni"] == vni]
        return got["status"], got["reason"]

    probers["B"].answer(port)
    b.reconcile()
    assert replica() == ("active", "")

    # A stops: no requests come (B's port turns silent), A's API does not answer
    router.down.add(a.ip)
    probers["B"].silence(port, probers["B"].now - 2 * p.SILENT_AFTER)
    clock[0] += STEP
    b.reconcile()
    link = b.admin("GET", "/v1/links/A").json()
    assert link["status"]["state"] == "down", link
    assert replica() == ("active", "")
    clock[0] += p.PEER_AWAY_GRACE / 2
    b.reconcile()
    assert replica() == ("active", "")

    # A is back; its prober has a pass and a period to resume
    router.down.discard(a.ip)
    clock[0] += STEP
    b.reconcile()
    assert b.admin("GET", "/v1/links/A").json()["status"]["state"] == "up"
    assert replica() == ("active", "")
    probers["B"].answer(port)
    b.reconcile()
    assert replica() == ("active", "")

    # a silence that begins while A answers is the tunnel's, at once
    clock[0] += STEP
    probers["B"].silence(port, time.time() - 0.5)
    b.reconcile()
    assert replica()[0] == "error" and replica()[1].startswith(BLACK_HOLE), replica()
    probers["B"].answer(port)
    b.reconcile()
    assert replica() == ("active", "")

    # away past the grace: its tunnels are taken for down too
    router.down.add(a.ip)
    probers["B"].silence(port, time.time() - 2 * p.SILENT_AFTER)
    clock[0] += STEP
    b.reconcile()
    assert replica() == ("active", "")
    clock[0] += p.PEER_AWAY_GRACE
    b.reconcile()
    assert replica()[0] == "error" and replica()[1].startswith(BLACK_HOLE), replica()
    # back, still silent: it says as it said while the prober resumes, then the tunnel's
    router.down.discard(a.ip)
    clock[0] += STEP
    b.reconcile()
    assert replica()[0] == "error"
    probers["B"].silence(port, time.time() - 2 * p.SILENT_AFTER)
    clock[0] += p.expect_within(p.PERIOD) + p.RESUME_ALLOWANCE
    b.reconcile()
    assert replica()[0] == "error" and replica()[1].startswith(BLACK_HOLE), replica()
