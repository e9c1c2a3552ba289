"""A hostile peer (tests/functional/hostile_peer.py) answers every federation call with hostile
values in turn, correctly signed. For each: nothing it said reaches the data plane (every
command that would be written is recorded and checked), no device appears that the agent did
not plan, the honest peer's expansions keep converging in the same passes, and the link or
target names the bad answer; no traceback is logged (issue 13, findings 1, 4, 9, 10)."""

from __future__ import annotations

import json
import logging
import re
import secrets

import pytest
from sqlalchemy import select

from intercloud.domain import naming
from intercloud.domain.hoststate import Attachment, Bridge, Patch, Vxlan
from intercloud.drivers.cloud.base import ReplicaSync
from intercloud.drivers.dataplane.fake import FakeDataplane
from intercloud.drivers.dataplane.linux import ipbatch
from intercloud.federation import signing
from intercloud.federation.peers import PeerRef
from intercloud.reconciler import addressing, flushes, members, relays
from intercloud.store import models as m
from tests.functional.federation_harness import Router, make_agent, peer
from tests.functional.hostile_peer import HOSTILE, HostilePeer

B_IP = "198.18.2.2"
C_IP = "198.18.3.2"
A_IP = "198.18.1.2"
REPLICA_UID = "0b6f3a52-0000-4000-8000-00000000000b"  # a network of B's that A is a member of


class RecordingDataplane(FakeDataplane):
    """The fake data plane, recording the `ip -batch` lines each step would write (the Linux
    driver's bulk path) besides its own calls."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def ensure_bridge(self, bridge: Bridge) -> None:
        self.lines += [t for _, t in ipbatch.bridge(bridge, None)]
        super().ensure_bridge(bridge)

    def ensure_vxlan(self, vxlan: Vxlan) -> None:
        self.lines += [t for _, t in ipbatch.vxlan(vxlan, None, True)]
        super().ensure_vxlan(vxlan)

    def ensure_patch(self, patch: Patch) -> None:
        self.lines += [t for _, t in ipbatch.patch(patch)]
        super().ensure_patch(patch)

    def attach(self, attachment: Attachment) -> None:
        self.lines += [t for _, t in ipbatch.attach(attachment)]
        super().attach(attachment)


LINE = re.compile(
    r"link add name icv\d+( mtu \d+)? master (icbe\d+|tn-net[12]) type vxlan id \d+"
    r" local 198\.18\.1\.2"
    rf" remote ({re.escape(B_IP)}|{re.escape(C_IP)}) dstport 4789 learning df unset"
    r"|link add name icbe\d+( mtu \d+)? up type bridge stp_state 0 forward_delay 0"
    r"|link add name icpe\d+ master icbe\d+ type veth peer name icqe\d+"
    r"|link set icqe\d+ master tn-net[12]"
    r"|link set (icv\d+|icbe\d+|icpe\d+|icqe\d+|tn-net[12])"
    r" (up|master (icbe\d+|tn-net[12])|type bridge_slave isolated on)"
)


@pytest.fixture
def fed(tmp_path):
    yield from _federation(tmp_path, lambda: None)


@pytest.fixture
def fed_any(tmp_path, databases):
    """`fed` on SQLite and on PostgreSQL (whose reason columns refuse 1,025 characters)."""
    yield from _federation(tmp_path, databases)


def _federation(tmp_path, database):
    router = Router()
    a = make_agent(tmp_path, router, "A", 1, database())
    c = make_agent(tmp_path, router, "C", 3, database())
    peer(a, c)
    key = secrets.token_hex(16)
    b = HostilePeer("B", B_IP, {"A": key})
    router.apps[B_IP] = b  # type: ignore[assignment]
    router.names[B_IP] = "B"
    for path, body in (
        (
            "/v1/peers",
            {
                "name": "B",
                "federation_url": f"http://{B_IP}:8700",
                "underlay_endpoint": B_IP,
                "key": key,
            },
        ),
        ("/v1/links", {"peer": "B", "local_endpoint": A_IP, "psk": secrets.token_hex(16)}),
        (
            "/v1/agreements",
            {"peer": "B", "projects": ["p1", "p2"], "peer_projects": ["p1", "p2"]},
        ),
    ):
        r = a.admin("POST", path, body)
        assert r.status_code == 201, r.text
    rec = RecordingDataplane()
    for name in ("tn-net1", "tn-net2"):
        rec.add_foreign(name, "bridge")
    a.ctx.dataplane = rec
    a.ctx.reconciler.dataplane = rec
    yield a, b, c, key
    for agent in (a, c):
        agent.ctx.store.dispose()


def _passes(a, c, n: int = 3) -> None:
    for _ in range(n):
        a.reconcile()
        c.reconcile()


def _targets(a) -> dict[tuple[str, str], tuple[str, str]]:
    """(network, peer) -> (status, reason) of every target of A's expansions."""
    with a.ctx.store.session() as s:
        return {
            (t.expansion.network, t.peer.name): (t.status, t.reason)
            for t in s.scalars(select(m.Target))
        }


def _link(a, name: str) -> tuple[str, str]:
    with a.ctx.store.session() as s:
        lk = s.scalars(select(m.Link).join(m.Peer).where(m.Peer.name == name)).one()
        return lk.state, lk.reason


def _clean(reason: str) -> bool:
    return len(reason) <= 1024 and reason.isprintable()


def _check_host(a, planned: set[str]) -> None:
    """Only lines of the expected shapes, only devices the agent plans, no peer text."""
    rec: RecordingDataplane = a.ctx.dataplane
    for line in rec.lines:
        assert LINE.fullmatch(line), line
    for call in rec.calls:
        assert call.isprintable() and not re.search(r"pwn|\$\(|;", call), call
    for link in rec.links.values():
        assert link.foreign or link.name in planned, link.name
        if link.kind == "vxlan":
            assert (link.local, link.remote) in ((A_IP, B_IP), (A_IP, C_IP)), link
    ipsec = a.ctx.ipsec  # what would go to VICI: our links' endpoints only, no tunnel mode
    assert {name for _, name in ipsec.calls} <= {"link-B", "link-C"}, ipsec.calls
    for spec in ipsec.specs.values():
        assert (spec.local, spec.remote, spec.remote_ts) in ((A_IP, B_IP, ""), (A_IP, C_IP, ""))


def _planned(a) -> set[str]:
    with a.ctx.store.session() as s:
        keys = [f"e{e.id}" for e in s.scalars(select(m.Expansion))]
        names = {naming.bridge("ic", k) for k in keys}
        names |= {n for k in keys for n in naming.patch("ic", k)}
        names |= {naming.vxlan("ic", t.vni) for t in s.scalars(select(m.Target)) if t.vni}
    return names


def _ask_again(a, b) -> None:
    """B forgets the VNIs it agreed and A's next pass confirms every replica with its peer."""
    b.vnis.clear()
    r = a.ctx.reconciler
    for target_id in list(r.memory.confirmed_at):
        r.memory.confirmed_at[target_id] = -1e9


PASS_CALLS = ("health", "replica", "vni")


@pytest.mark.parametrize(
    "call,answer",
    [(c, x) for c, x in HOSTILE if c in PASS_CALLS],
    ids=[f"{c}-{i}" for i, (c, _) in enumerate(HOSTILE) if c in PASS_CALLS],
)
def test_a_hostile_answer_stays_with_its_peer(fed, caplog, call, answer):
    a, b, c, _ = fed
    for network, project in (("net1", "p1"), ("net2", "p2")):
        peers = ["B", "C"] if network == "net1" else ["C"]
        r = a.user(project, "POST", "/v1/expansions", {"network": network, "peers": peers})
        assert r.status_code == 201, r.text
    _passes(a, c)
    assert {s for s, _ in _targets(a).values()} == {"active"}, _targets(a)

    caplog.set_level(logging.INFO)
    b.hostile = {call: answer}
    a.ctx.reconciler.memory.healthy_at.clear()  # ask for health now, not in HEALTH_FRESH
    if call != "health":
        _ask_again(a, b)
    _passes(a, c)
    assert ("A", call, True) in b.served  # the hostile answer was given

    targets = _targets(a)
    assert targets[("net1", "C")] == ("active", "") and targets[("net2", "C")] == ("active", "")
    status, reason = targets[("net1", "B")]
    if isinstance(answer, dict) and answer.get("status") == "error" and "x\n" in answer["reason"]:
        # a well-formed refusal: its reason is shown, on one line, bounded
        assert status == "error" and reason.startswith("peer B: x x x"), reason
        assert _clean(reason) and len(reason) < 600
        return
    assert status == "error" and f"peer B: bad answer to {call}:" in reason, reason
    link_state, link_reason = _link(a, "B")
    if call == "health":
        assert link_state == "down" and f"bad answer to {call}" in link_reason, link_reason
    assert all(_clean(r) for _, r in targets.values()) and _clean(link_reason)
    assert f"peer B: bad answer to {call}" in (a.ctx.reconciler.stats.last_error or "")
    _check_host(a, _planned(a))
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert all(r.getMessage().isprintable() for r in caplog.records)

    b.hostile = {}  # honest again: B's target recovers
    _passes(a, c)
    assert {s for s, _ in _targets(a).values()} == {"active"}, _targets(a)
    _check_host(a, _planned(a))


def _as_b(a, key: str, method: str, path: str, body: dict) -> None:
    """A signed federation request from B to A (B as the origin of a network)."""
    raw = json.dumps(body).encode()
    headers = signing.sign("B", "A", key, method, path, raw) | {"Content-Type": "application/json"}
    r = a.http.request(method, path, content=raw, headers=headers)
    assert r.status_code < 300, r.text


@pytest.fixture
def mesh_work(fed):
    """A is the origin of net1 over B and C, and a member of B's network with C."""
    a, b, c, key = fed
    r = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B", "C"]})
    uid = r.json()["id"]
    _passes(a, c)
    rep = f"/v1/federation/replicas/{REPLICA_UID}"
    _as_b(a, key, "PUT", rep, {"project": "p1", "network": "bnet", "cidr": "10.20.0.0/24",
                               "members": ["A", "B", "C"]})  # fmt: skip
    _as_b(a, key, "PUT", rep + "/vni", {"exclude": []})
    with a.ctx.store.session() as s:
        t = s.scalars(select(m.Target).join(m.Peer).where(m.Peer.name == "B")).one()
        replica = s.scalars(select(m.Replica)).one()
        return a, b, key, uid, t.id, t.expansion_id, replica.id


def _snapshot(a) -> list:
    with a.ctx.store.session() as s:
        return [
            [(t.relays_sent, t.direct, t.vni, t.status) for t in s.scalars(select(m.Target))],
            [(r.direct_sent, r.ports_sent, r.vni) for r in s.scalars(select(m.Replica))],
            sorted((x.vni, x.owner) for x in s.scalars(select(m.VniAllocation))),
        ]


MESH_CALLS = ("relays", "adjacency", "direct", "ports", "flush")


@pytest.mark.parametrize(
    "call,answer",
    [(c, x) for c, x in HOSTILE if c in MESH_CALLS],
    ids=[f"{c}-{i}" for i, (c, _) in enumerate(HOSTILE) if c in MESH_CALLS],
)
def test_a_hostile_mesh_answer_changes_nothing(mesh_work, caplog, call, answer):
    """The calls a pass makes only in a mesh (relays, direct tunnels, ports, flushes), each
    made by the reconciler's own function against the hostile peer: refused, nothing kept."""
    a, b, key, uid, target_id, expansion_id, replica_id = mesh_work
    client, store, url = a.ctx.reconciler.federation, a.ctx.store, f"http://{B_IP}:8700"
    b_ref = PeerRef("B", url, key)
    b.hostile = {call: answer}
    before = _snapshot(a)
    errors: list[str] = []
    caplog.set_level(logging.INFO)
    if call == "relays":
        work = relays.RelayPush(target_id, uid, b_ref, (("A", "C"),), ("A", "B", "C"))
        done = relays.push(store, client, work, errors)
    elif call == "adjacency":
        work = members.AdjacencyWork(
            **{
                "adjacency_id": 999,
                "uid": REPLICA_UID,
                "origin": "B",
                "peer": b_ref,
                "vni": None,
            }
        )
        done = members.agree(store, client, work, (1, 2**24 - 1), errors)
    elif call == "direct":
        work = members.DirectReport(replica_id, REPLICA_UID, b_ref, ("C",))
        done = members.report(store, client, work, errors)
    elif call == "ports":
        made = ReplicaSync(local_ports={REPLICA_UID: (("fa:16:3e:00:00:01", "10.20.0.5"),)})
        done = addressing.report_ports(store, client, made, {}, errors)
    else:
        done = flushes.members(store, client, expansion_id, {"B"}, errors)
    assert done is False
    assert ("A", call, True) in b.served
    assert len(errors) == 1 and errors[0].startswith(f"peer B: bad answer to {call}: "), errors
    assert _clean(errors[0])
    assert _snapshot(a) == before
    assert not [r for r in caplog.records if r.exc_info]


def test_a_hostile_answer_to_a_delete_keeps_the_target_and_removes_the_others(fed, caplog):
    a, b, c, _ = fed
    r = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B", "C"]})
    uid = r.json()["id"]
    _passes(a, c)
    caplog.set_level(logging.INFO)
    b.hostile = dict(x for x in HOSTILE if x[0] == "delete")
    assert a.user("p1", "DELETE", f"/v1/expansions/{uid}").status_code in (200, 202, 204)
    _passes(a, c)
    targets = _targets(a)
    assert list(targets) == [("net1", "B")]  # C's is gone, B's waits
    status, reason = targets[("net1", "B")]
    assert status == "deleting" and "peer B: bad answer to delete" in reason, reason
    assert not [r for r in caplog.records if r.exc_info]
    b.hostile = {}
    _passes(a, c)
    assert _targets(a) == {}
    _check_host(a, _planned(a))


@pytest.mark.parametrize(
    "status,body,shown",
    [
        (422, json.dumps({"error": {"message": "vni:\nforged line " + "x" * 5000}}), "vni: forged"),
        (500, "<html>Traceback at http://10.0.0.1:8700/secret\n" + "y" * 5000, "HTTP 500"),
        (409, json.dumps({"error": {"message": {"nested": 1}}}), "HTTP 409"),
    ],
)
def test_a_refusal_shows_the_peers_words_cleaned_never_its_raw_text(fed_any, status, body, shown):
    a, b, c, _ = fed_any
    r = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B", "C"]})
    assert r.status_code == 201, r.text
    b.hostile = {"replica": {"__status__": status, "__body__": body}}
    _passes(a, c)
    targets = _targets(a)
    assert targets[("net1", "C")] == ("active", "")
    state, reason = targets[("net1", "B")]
    assert state == "error" and reason.startswith(f"peer B refused: {shown}"), reason
    assert _clean(reason) and len(reason) < 400 and "10.0.0.1" not in reason


def test_a_peers_long_reason_fits_the_column(fed_any):
    """A replica the peer could not build, with a reason far over 1,024 characters: stored
    cut to fit (PostgreSQL refused the whole status write before), on one line."""
    a, b, c, _ = fed_any
    r = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B", "C"]})
    assert r.status_code == 201, r.text
    b.hostile = {"replica": {"status": "error", "vni": None, "reason": "why\n" * 3000}}
    _passes(a, c)
    targets = _targets(a)
    assert targets[("net1", "C")] == ("active", "")
    state, reason = targets[("net1", "B")]
    assert state == "error" and reason.startswith("peer B: why why") and _clean(reason), reason
