"""Centralized, mesh and hybrid networks in a lab of four clouds (real agents, charons,
kernel bridges and VXLAN). Links: A-B, A-C, A-D and B-C; D has no link but to A. Every
network here is net1 of A's project p1, so A is the origin and the relay, unless its own
link to a member is down."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from intercloud.lab import nsexec
from intercloud.lab.topology import Lab
from tests.integration.helpers import capture
from tests.integration.test_expansion import expand, ping, shrink
from tests.waiting import wait_for

IPS = {"A": "10.10.0.1", "B": "10.10.0.2", "C": "10.10.0.3", "D": "10.10.0.4"}


@pytest.fixture(scope="module")
def lab4():
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (network namespaces); run them as root")
    lab = Lab("m" + secrets.token_hex(3))
    try:
        lab.up(4)
        for x, y in (("A", "B"), ("A", "C"), ("A", "D"), ("B", "C")):
            lab.peer(x, y)
        yield lab
    finally:
        lab.down()


@pytest.fixture
def net1(lab4):
    """Expand net1 of A to the given clouds, with one VM per cloud; undone after."""
    made: dict[str, object] = {}

    def make(*peers: str) -> dict:
        exp = expand(lab4, "A", "p1", "net1", list(peers))
        made["exp"] = exp
        lab4.add_vm("A", "vm", f"{IPS['A']}/24", network="net1")
        made.setdefault("vms", []).append("A")
        for cloud in peers:
            lab4.add_vm(cloud, "vm", f"{IPS[cloud]}/24", replica_of="A/net1")
            made["vms"].append(cloud)
        return exp

    yield make
    for cloud in made.get("vms", []):
        lab4.remove_vm(cloud, "vm")
    if "exp" in made:
        shrink(lab4, "A", "p1", made["exp"]["id"])


def paths(lab, uid: str) -> dict[str, str | None]:
    exp = lab.api("A", "GET", f"/v1/expansions/{uid}", token="p1")
    return {"-".join(p["between"]): ",".join(p["via"]) or None for p in exp.get("paths", [])}


def wait_paths(lab, uid: str, want: dict[str, str | None], timeout: float = 30) -> None:
    wait_for(lambda: paths(lab, uid) == want, timeout=timeout, what=f"paths {want}")


def relayed_icmp(lab, src: str, dst: str, count: int = 5, at: str = "A") -> tuple[bool, list[str]]:
    """Ping dst from src's VM while capturing, on every interface of `at`'s gateway, the
    decapsulated ICMP between the two VMs that it sends out of a port: what it relays. (A
    frame flooded to it before the sender learned the direct path arrives but goes no
    further.) Returns (the ping was answered, the relayed lines)."""
    bpf = f"icmp and host {IPS[src]} and host {IPS[dst]}"
    with capture(lab.gw_ns(at), "any", bpf) as cap:
        answered = ping(lab, f"{src}/vm", IPS[dst], count=count)
    return answered, [line for line in cap.lines if re.search(r" Out ", line)]


def icmp_at_a(lab, src: str, dst: str, count: int = 5, at: str = "A") -> list[str]:
    answered, relayed = relayed_icmp(lab, src, dst, count, at)
    assert answered
    return relayed


def direct_again(lab, src: str, dst: str, relay: str = "A") -> None:
    """The path says direct once both ends reported it; A applies it on its next pass and
    then has both ends forget what they learned through it: for that moment (a fraction of
    a second) their traffic still goes to A, which no longer relays it. Wait until a ping is
    answered and nothing of it crosses A."""

    def direct() -> bool:
        answered, relayed = relayed_icmp(lab, src, dst, count=2, at=relay)
        return answered and relayed == []

    wait_for(direct, timeout=15, what=f"a direct answer, nothing relayed by {relay}")


def test_centralized_b_and_d_talk_through_a(lab4, net1):
    exp = net1("B", "D")  # B and D have no link: A relays
    wait_paths(lab4, exp["id"], {"A-B": None, "A-D": None, "B-D": "A"})
    seen = icmp_at_a(lab4, "B", "D")
    assert any("echo request" in x for x in seen) and any("echo reply" in x for x in seen), seen


def broadcasts_seen(lab, sender: str, receivers: list[str], count: int = 5) -> dict[str, int]:
    """ARP requests (Ethernet broadcast) for an address nobody has, sent by `sender`'s VM:
    how many reach each receiver's VM."""
    probe = "10.10.0.99"
    bpf = f"arp and host {probe}"
    caps = {c: capture(lab.vm_ns(c, "vm"), "eth0", bpf) for c in receivers}
    opened = {c: cm.__enter__() for c, cm in caps.items()}
    try:
        r = lab.exec(f"{sender}/vm", ["arping", "-c", str(count), "-w", "10", "-i", "1",
                                     "-I", "eth0", probe])  # fmt: skip
        assert f"Sent {count} probes" in r.stdout, (r.stdout, r.stderr)
    finally:
        for cm in caps.values():
            cm.__exit__(None, None, None)
    return {c: sum("Request who-has" in x for x in cap.lines) for c, cap in opened.items()}


def test_mesh_b_and_c_talk_directly_and_broadcast_arrives_once(lab4, net1):
    exp = net1("B", "C")
    wait_paths(lab4, exp["id"], {"A-B": None, "A-C": None, "B-C": None})
    direct_again(lab4, "B", "C")  # direct: nothing crosses A
    assert broadcasts_seen(lab4, "B", ["A", "C"]) == {"A": 5, "C": 5}


def _wan_cut(lab, x: str, y: str, on: bool) -> None:
    """Drop (or stop dropping) all underlay traffic between clouds x and y at the WAN."""
    table = f"cut{x}{y}".lower()
    if on:
        rules = (
            f"table ip {table} {{\n chain blocked {{\n  type filter hook forward priority 0;\n"
            f"  ip saddr {lab.ip(x)} ip daddr {lab.ip(y)} drop\n"
            f"  ip saddr {lab.ip(y)} ip daddr {lab.ip(x)} drop\n }}\n}}\n"
        )
    else:
        rules = f"delete table ip {table}\n"
    subprocess.run(["ip", "netns", "exec", lab.wan_ns, "nft", "-f", "-"], input=rules,
                   text=True, check=True)  # fmt: skip


HYBRID = {"A-B": None, "A-C": None, "A-D": None, "B-C": None, "B-D": "A", "C-D": "A"}


def hybrid(lab, net1) -> str:
    """net1 of A expanded to B, C and D, B-C talking directly: its id."""
    uid = net1("B", "C", "D")["id"]
    wait_paths(lab, uid, HYBRID)
    direct_again(lab, "B", "C")
    return uid


def test_hybrid_relays_around_a_cut_link_and_returns(lab4, net1):
    uid, mesh = hybrid(lab4, net1), HYBRID
    # exactly once everywhere: to C directly, to A and (through A) to D
    assert broadcasts_seen(lab4, "B", ["A", "C", "D"]) == {"A": 5, "C": 5, "D": 5}

    # A running ping B -> C while the B-C link is cut at the WAN, then restored.
    with running_ping(lab4, "B", "C") as pinging:
        try:
            time.sleep(1)  # the ping runs a while before the cut: part of the scenario
            _wan_cut(lab4, "B", "C", on=True)
            relayed = dict(mesh, **{"B-C": "A"})
            wait_paths(lab4, uid, relayed, timeout=40)
            seen = icmp_at_a(lab4, "B", "C", count=3)
            assert any("echo request" in x for x in seen), seen  # now through A
            assert broadcasts_seen(lab4, "B", ["A", "C", "D"]) == {"A": 5, "C": 5, "D": 5}
        finally:
            _wan_cut(lab4, "B", "C", on=False)
        wait_paths(lab4, uid, mesh, timeout=60)
        direct_again(lab4, "B", "C")
    check_ping(pinging.output, "B->C")


PING_INTERVAL = 0.1


class RunningPing:
    """A ping from src's VM to dst's, 10 a second, in the background until stop() (SIGINT:
    ping prints what it got); at most 120 s."""

    def __init__(self, lab, src: str, dst: str) -> None:
        argv = ["ping", "-i", str(PING_INTERVAL), "-W", "1", "-c", "1200", IPS[dst]]
        self.proc = subprocess.Popen(
            nsexec.exec_argv(lab.namespace(f"{src}/vm"), argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.output = ""
        time.sleep(1)  # pings answered before the caller changes anything

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.output, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.output, _ = self.proc.communicate()


@contextmanager
def running_ping(lab, src: str, dst: str) -> Iterator[RunningPing]:
    """RunningPing for the block; stopped when it ends, even on failure."""
    pinging = RunningPing(lab, src, dst)
    try:
        yield pinging
    finally:
        pinging.stop()


def check_ping(text: str, what: str) -> None:
    """The running ping kept being answered through a cut and a repair, never twice."""
    seqs = [int(x) for x in re.findall(r"icmp_seq=(\d+)", text)]
    assert seqs, text[-500:]
    gap = max(b - a for a, b in zip([0, *seqs], seqs, strict=False))
    print(f"{what} ping through cut and repair: {len(seqs)} of {seqs[-1]} answered; longest "
          f"outage {gap * PING_INTERVAL:.1f} s")  # fmt: skip
    assert seqs[-1] - seqs[0] > 100  # the ping kept going: through the relay, then direct
    assert "DUP!" not in text  # never delivered twice, through either change


def test_hybrid_origin_link_cut_relays_through_another_member_and_returns(lab4, net1):
    """A loses its own link to C: B (linked to both) relays A-C, C-D goes B then A."""
    uid, mesh = hybrid(lab4, net1), HYBRID
    with running_ping(lab4, "A", "C") as pinging:
        try:
            _wan_cut(lab4, "A", "C", on=True)
            wait_paths(lab4, uid, dict(mesh, **{"A-C": "B", "C-D": "B,A"}), timeout=40)
            seen = icmp_at_a(lab4, "A", "C", count=3, at="B")
            assert any("echo request" in x for x in seen), seen  # B relays A's traffic to C
            assert any("echo reply" in x for x in seen), seen
            assert ping(lab4, "D/vm", IPS["C"])  # D -> A -> B -> C and back
            for sender in ("A", "C", "D"):  # still exactly once everywhere, from every side
                others = [x for x in "ABCD" if x != sender]
                assert broadcasts_seen(lab4, sender, others) == dict.fromkeys(others, 5), sender
        finally:
            _wan_cut(lab4, "A", "C", on=False)
        wait_paths(lab4, uid, mesh, timeout=60)
        direct_again(lab4, "A", "C", relay="B")
    check_ping(pinging.output, "A->C")
    assert broadcasts_seen(lab4, "C", ["A", "B", "D"]) == {"A": 5, "B": 5, "D": 5}


AS_PEER = """
import json, sys
from intercloud.errors import PeerError
from intercloud.federation.peers import Federation, PeerRef
caller, callee, url, key, method, path, body, ca = json.loads(sys.argv[1])
pinned = open(ca).read()
federation = Federation(caller, pinned=lambda _: pinned)
try:
    out = federation.peer(PeerRef(callee, url, key)).request(method, path, body)
    print(json.dumps({"status": 200, "body": out}))
except PeerError as exc:
    print(json.dumps({"status": exc.status, "message": exc.message}))
"""


NO_REPLICA = "/v1/federation/replicas/0b6f3a52-0000-4000-8000-0123456789ab"  # not A's


def as_peer(lab, caller: str, callee: str, method: str, path: str, body=None) -> dict:
    """A federation call signed with `caller`'s key, made from inside `caller`'s namespace."""
    key = next(p.key for p in lab.state().peerings if sorted(p.clouds) == sorted([caller, callee]))
    c = lab.cloud(callee)
    args = [caller, callee, c.url, key, method, path, body, c.ca]
    r = lab.exec(caller, ["python3", "-c", AS_PEER, json.dumps(args)])
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _settled(item: dict) -> dict:
    """An item without what the agent measures as time goes by (health checks, SA counters,
    probe figures): a peer's refused calls must change none of the rest, its state included."""
    out = {k: v for k, v in item.items() if k != "tunnel"}
    if isinstance(out.get("status"), dict):
        out["status"] = out["status"].get("state")
    return out


def provider_state(lab) -> dict:
    return {
        what: [_settled(item) for item in lab.api("A", "GET", f"/v1/{what}")]
        for what in ("replicas", "links", "agreements", "peers")
    }


def test_standalone_agent_in_a_vm_expands_its_network_and_nothing_else(lab4, net1):
    exp_ab = net1("B")  # A's own expansion: its VNI is taken in A
    user = lab4.add_standalone("B")  # a user's VM on B's net1, with a public address
    lab4.peer("A", user, projects=["p1"])  # the provider admits the user's project only
    exp = expand(lab4, user, "p1", "home", ["A"])
    try:
        lab4.add_vm("A", "ua", "10.10.0.7/24", replica_of=f"{user}/home")
        lab4.add_vm("B", "bvm", "10.10.0.8/24", network="net1")
        # B's own tenant network now reaches into A through the user's VM; B did nothing
        assert wait_for(lambda: ping(lab4, "A/ua", "10.10.0.8"), timeout=20, what="ping")

        before = provider_state(lab4)
        rep = next(r for r in before["replicas"] if r["peer"] == user)
        taken = exp_ab["peers"][0]["vni"]
        refused = {
            "another project's network": as_peer(
                lab4, user, "A", "PUT", NO_REPLICA,
                {"project": "p2", "network": "net2", "cidr": "10.10.0.0/24"},
            ),
            "a link": as_peer(lab4, user, "A", "PATCH", f"/v1/links/{user}", {"mtu": 9000}),
            "an agreement": as_peer(
                lab4, user, "A", "POST", "/v1/agreements", {"peer": user, "projects": ["p2"]}
            ),
            "another VNI": as_peer(
                lab4, user, "A", "PUT", f"/v1/federation/replicas/{rep['id']}/vni",
                {"vni": taken, "exclude": []},
            ),
            "another's replica": as_peer(
                lab4, user, "A", "PUT", f"{NO_REPLICA}/vni", {}
            ),
            "a mesh tunnel": as_peer(
                lab4, user, "A", "PUT", f"/v1/federation/adjacencies/{exp_ab['id']}",
                {"origin": "A"},
            ),
            "another expansion's paths": as_peer(
                lab4, user, "A", "PUT", f"/v1/federation/expansions/{exp_ab['id']}/direct",
                {"direct": []},
            ),
        }  # fmt: skip
        statuses = {what: r["status"] for what, r in refused.items()}
        print(json.dumps(refused, indent=1))
        assert statuses == {
            "another project's network": 403,
            "a link": 401,
            "an agreement": 401,
            "another VNI": 409,
            "another's replica": 404,
            "a mesh tunnel": 404,
            "another expansion's paths": 404,
        }
        assert "project" in refused["another project's network"]["message"]
        assert "vni" in refused["another VNI"]["message"]
        assert provider_state(lab4) == before  # nothing changed
        assert ping(lab4, "A/ua", "10.10.0.8")
    finally:
        for cloud, vm in (("A", "ua"), ("B", "bvm")):
            if f"{cloud}/{vm}" in lab4.state().vms:
                lab4.remove_vm(cloud, vm)
        shrink(lab4, user, "p1", exp["id"])
