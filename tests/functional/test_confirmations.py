"""The origin's re-checks of agreed replicas, one call per peer (reconciler/confirms.py,
POST /v1/federation/confirmations): what a PUT per replica did, in one call; a replica the
peer does not confirm, and a peer without the call, go one PUT each."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select

from intercloud.reconciler import Reconciler
from intercloud.reconciler.memory import PEER_REFRESH
from intercloud.store import models as m
from tests.functional.federation_harness import Router, make_agent, peer, peered_pair

CONFIRM = "/v1/federation/confirmations"


class Recording(Router):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, bytes]] = []
        self.without_confirmations: set[str] = set()  # hosts whose agent predates the call

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path, request.content))
        if request.url.path == CONFIRM and request.url.host in self.without_confirmations:
            return httpx.Response(404, json={"detail": "Not Found"})  # unsigned, as FastAPI's
        return super().handle_request(request)

    def puts(self) -> int:
        return sum(1 for meth, path, _ in self.calls if meth == "PUT" and "/replicas/" in path)

    def confirmed(self) -> list[list[str]]:
        return [
            [r["uid"] for r in json.loads(body)["replicas"]]
            for meth, path, body in self.calls
            if path == CONFIRM
        ]


@pytest.fixture
def agents(tmp_path):
    router = Recording()
    a = make_agent(tmp_path, router, "A", 1)
    b = make_agent(tmp_path, router, "B", 2)
    peer(a, b)
    uids = []
    for project, network in (("p1", "net1"), ("p2", "net2")):
        r = a.user(project, "POST", "/v1/expansions", {"network": network, "peers": ["B"]})
        assert r.status_code == 201, r.text
        uids.append(r.json()["id"])
    for _ in range(4):
        a.reconcile()
        b.reconcile()
    clock = [1000.0]
    old = a.ctx.reconciler
    fresh = Reconciler(
        old.cfg, old.store, old.cloud, old.dataplane, old.federation, old.ipsec,
        clock=lambda: clock[0],
    )  # fmt: skip
    fresh.reconcile_once()  # the first pass after a restart asks nobody
    router.calls.clear()
    yield a, b, router, fresh, clock, uids
    for agent in (a, b):
        agent.ctx.store.dispose()


def _statuses(a) -> set[str]:
    return {
        e["status"]
        for project in ("p1", "p2")
        for e in a.user(project, "GET", "/v1/expansions").json()
    }


def test_the_replicas_due_with_one_peer_are_confirmed_in_one_call(agents):
    a, _, router, fresh, clock, uids = agents
    clock[0] += 2 * PEER_REFRESH  # both due
    fresh.reconcile_once()
    assert [sorted(c) for c in router.confirmed()] == [sorted(uids)]
    assert router.puts() == 0
    assert _statuses(a) == {"active"}


def test_targets_in_error_are_asked_in_the_one_call_and_turn_active_again(agents):
    """After a restart the peers may have said `error` (our tunnels were silent while we were
    down): those targets are asked again in the one call, not with a PUT each."""
    a, _, router, fresh, _, uids = agents
    with a.ctx.store.session() as s:
        for t in s.scalars(select(m.Target)):
            t.status, t.reason = "error", "peer B: no frames through the tunnel since then"
    fresh.reconcile_once()
    assert [sorted(c) for c in router.confirmed()] == [sorted(uids)]
    assert router.puts() == 0
    assert _statuses(a) == {"active"}


def test_a_replica_the_peer_lost_is_made_again_one_by_one(agents):
    a, b, router, fresh, clock, uids = agents
    with b.ctx.store.session() as s:  # B forgot one replica (a restore from an old backup)
        s.delete(s.scalar(select(m.Replica).where(m.Replica.uid == uids[0])))
    clock[0] += 2 * PEER_REFRESH
    fresh.reconcile_once()
    assert len(router.confirmed()) == 1
    put = [path for meth, path, _ in router.calls if meth == "PUT"]
    assert put == [f"/v1/federation/replicas/{uids[0]}", f"/v1/federation/replicas/{uids[0]}/vni"]
    for _ in range(3):
        b.reconcile()
        fresh.reconcile_once()
    with b.ctx.store.session() as s:
        again = s.scalar(select(m.Replica).where(m.Replica.uid == uids[0]))
        assert again is not None and again.vni is not None
    with a.ctx.store.session() as s:
        assert again.vni in set(s.scalars(select(m.Target.vni)))  # both sides agree again
    assert _statuses(a) == {"active"}


def test_a_peer_without_the_call_is_asked_one_by_one_for_a_while(agents):
    a, b, router, fresh, clock, _ = agents
    router.without_confirmations.add(b.ip)
    clock[0] += 2 * PEER_REFRESH
    fresh.reconcile_once()
    assert len(router.confirmed()) == 1 and router.puts() == 2  # tried once, then a PUT each
    router.calls.clear()
    clock[0] += 1  # both due again within PEER_REFRESH of the failure: not tried again
    fresh.memory.confirmed_at = dict.fromkeys(fresh.memory.confirmed_at, clock[0] - PEER_REFRESH)
    fresh.reconcile_once()
    assert router.confirmed() == [] and router.puts() == 2
    router.without_confirmations.clear()  # upgraded: tried again after PEER_REFRESH
    router.calls.clear()
    clock[0] += 2 * PEER_REFRESH
    fresh.reconcile_once()
    assert len(router.confirmed()) == 1 and router.puts() == 0
    assert _statuses(a) == {"active"}


def _as_a_to_b(a, b):
    """A's signed channel to B, to send what a misbehaving origin would."""
    from intercloud.federation.peers import PeerRef

    with a.ctx.store.session() as s:
        key = s.scalar(select(m.Peer.key).where(m.Peer.name == "B"))
    return a.ctx.reconciler.federation.peer(PeerRef("B", f"http://{b.ip}:8700", key))


def test_the_peer_answers_each_replica_and_refuses_one_it_may_not_hold(agents):
    a, b, _, _, _, uids = agents
    item = {"project": "p1", "network": "net1", "cidr": "10.10.0.0/24", "members": ["A", "B"]}
    refused = {**item, "uid": "0b1e5c1e-0000-4000-8000-000000000001", "project": "p9"}
    answer = _as_a_to_b(a, b).request(
        "POST", CONFIRM, {"replicas": [{**item, "uid": uids[0]}, refused]}
    )
    first, second = answer["replicas"]
    assert first["uid"] == uids[0] and first["status"] == "active" and first["vni"]
    assert second["uid"] == refused["uid"] and "p9" in second["error"]
    with b.ctx.store.session() as s:  # the refused one was not made
        assert s.scalar(select(m.Replica).where(m.Replica.uid == refused["uid"])) is None


def test_one_call_answers_held_new_changed_and_refused_replicas_each_as_its_put_would(agents):
    """The replicas the peer holds are answered from one query; a new one is made as its PUT
    would make it; a held one asked with another cidr, and a malformed id, are refused alone."""
    a, b, _, _, _, uids = agents
    with b.ctx.store.session() as s:
        held = {r.uid: r.network for r in s.scalars(select(m.Replica))}
    net = {uid: held[uid] for uid in uids}
    project = {uid: "p1" if net[uid] == "net1" else "p2" for uid in uids}

    def item(uid, **kw):
        body = {"project": project.get(uid, "p1"), "network": net.get(uid, "net9")}
        return {"uid": uid, **body, "cidr": "10.10.0.0/24", "members": ["A", "B"], **kw}

    new_uid = "0b1e5c1e-0000-4000-8000-0000000000aa"
    answer = _as_a_to_b(a, b).request(
        "POST",
        CONFIRM,
        {
            "replicas": [
                item(uids[0]),
                item(uids[1], members=["A", "B", "C"]),
                item(uids[0], cidr="10.99.0.0/24"),
                item(new_uid),
                item("not-a-uuid"),
            ]
        },
    )
    same, changed, other_cidr, made, bad = answer["replicas"]
    assert same["status"] == "active" and same["vni"] and "error" not in same
    assert changed["uid"] == uids[1] and "error" not in changed
    assert "another project/network/cidr" in other_cidr["error"]
    assert made["uid"] == new_uid and made["status"] == "pending" and made["vni"] is None
    assert bad["uid"] == "not-a-uuid" and "id" in bad["error"]
    with b.ctx.store.session() as s:
        rows = {r.uid: r for r in s.scalars(select(m.Replica))}
        assert rows[uids[1]].members == ["A", "B", "C"]  # the change was kept
        assert rows[uids[0]].cidr == "10.10.0.0/24"  # the refused one changed nothing
        assert new_uid in rows and "not-a-uuid" not in rows


@pytest.mark.parametrize(
    "body,field",
    [
        ({"replicas": []}, "replicas"),
        ({"replicas": [{"uid": "x", "project": "p1"}] * 101}, "replicas"),
        ({"replicas": [{"uid": "x" * 65, "project": "p1", "network": "n", "cidr": "c"}]}, "uid"),
        ({"other": 1}, "replicas"),
    ],
)
def test_a_bad_confirmations_body_is_refused_naming_the_field(agents, body, field):
    from intercloud.errors import PeerError

    a, b, *_ = agents
    with pytest.raises(PeerError) as exc:
        _as_a_to_b(a, b).request("POST", CONFIRM, body)
    assert exc.value.status == 422 and field in exc.value.message, exc.value.message


def test_replicas_the_peer_has_not_built_yet_are_asked_in_the_same_call(tmp_path):
    router = Recording()
    with peered_pair(tmp_path, router) as (a, b):
        uids = []
        for project, network in (("p1", "net1"), ("p2", "net2")):
            r = a.user(project, "POST", "/v1/expansions", {"network": network, "peers": ["B"]})
            uids.append(r.json()["id"])
        a.reconcile()  # agreed (a PUT and a VNI each); B has built nothing yet
        assert _statuses(a) == {"pending"} and router.puts() == 4  # replica, VNI: each
        router.calls.clear()
        a.reconcile()  # still pending: both asked again in one call
        assert router.puts() == 0 and [sorted(c) for c in router.confirmed()] == [sorted(uids)]
        b.reconcile()  # B builds its side
        a.reconcile()
        assert _statuses(a) == {"active"} and router.puts() == 0
