"""Probes through the tunnels, on the lab's real agents, kernels and charons: RTT and loss of two
expansions over the same encrypted link A-B appear in the expansion, the status and the
metrics; then the WAN black-holes the VXLAN packets of ONE of them (an nft rule in A's gateway,
before encryption, in a table this test makes and deletes) while the link and its SA stay up:
that expansion, and not the other, turns `error` with "no frames through the tunnel since"
within 10 s of the cut, and turns `active` again by itself once the rule is gone."""

from __future__ import annotations

import re
import secrets
import subprocess
import time

from intercloud.lab import nshttp
from tests.integration.test_expansion import expand, shrink
from tests.waiting import wait_for

BLACK_HOLE = "no frames through the tunnel since"


def peer_view(lab, uid: str, project: str) -> dict:
    exp = lab.api("A", "GET", f"/v1/expansions/{uid}", token=project)
    (peer,) = exp["peers"]
    return peer


def answered(lab, uid: str, project: str) -> dict | None:
    tunnel = peer_view(lab, uid, project).get("tunnel")
    return tunnel if tunnel and tunnel["last_answer_at"] and tunnel["rtt_ms"] else None


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of a Prometheus text exposition (None: absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.fullmatch(rf"{re.escape(name)}\{{(.*)\}} (\S+)", line)
        if m and ",".join(sorted(m.group(1).split(","))) == want:
            return float(m.group(2))
    return None


def scrape(lab, cloud: str) -> str:
    c = lab.cloud(cloud)
    status, text, _ = nshttp.http(c.ns, "GET", "/metrics", token=c.admin_token, cafile=c.ca)
    assert status == 200, text
    return text


def nft(lab, cloud: str, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return lab.exec(cloud, ["nft", "-f", "-"], input=script, check=check, token=None)


def test_probes_measure_both_expansions_and_a_black_holed_vni_turns_error_then_recovers(lab3):
    one = expand(lab3, "A", "p1", "net1", ["B"])
    other = expand(lab3, "A", "p2", "net2", ["B"])
    table = "ictest_probe_" + secrets.token_hex(3)
    try:
        # RTT and loss of both, in the expansion (user), the status (admin) and the metrics
        for uid, project in ((one["id"], "p1"), (other["id"], "p2")):
            tunnel = wait_for(
                lambda uid=uid, project=project: answered(lab3, uid, project),
                timeout=15,
                what=f"a probe through {uid}'s tunnel answered",
            )
            assert 0 < tunnel["rtt_ms"] < 1000 and 0 <= tunnel["loss"] <= 1, tunnel
            assert tunnel["answered"] >= 1 and tunnel["sent"] >= tunnel["answered"], tunnel
        status = lab3.api("A", "GET", "/v1/status")
        probes = status["probes"]
        assert probes["available"] is True and probes["period_s"] > 0, probes
        (to_b,) = [p for p in probes["peers"] if p["peer"] == "B"]
        assert to_b["tunnels"] == 2 and to_b["answering"] == 2 and to_b["silent"] == 0, to_b
        assert to_b["rtt_ms"] > 0, to_b
        # B's side: its own prober, reported by its own pass (it may come a moment later)
        replicas = wait_for(
            lambda: b_replicas_answered(lab3),
            timeout=15,
            what="B's probes through both replicas' tunnels answered",
        )
        assert len(replicas) == 2, replicas
        text = scrape(lab3, "A")
        assert metric(text, "intercloud_tunnel_probes_total", peer="B", result="answered") > 0
        assert metric(text, "intercloud_tunnel_probe_rtt_seconds_count", peer="B") > 0
        assert metric(text, "intercloud_tunnels_silent", peer="B") == 0
        topology = lab3.api("A", "GET", "/v1/topology")
        (link_b,) = [lk for lk in topology["links"] if lk["peer"] == "B"]
        assert link_b["rtt_ms"] and link_b["rtt_ms"] > 0, link_b

        # the WAN drops the VXLAN packets of ONE expansion's VNI, before IPsec encrypts them:
        # UDP 4789 whose VXLAN header (after the 8-byte UDP header and 4 bytes of flags)
        # carries that VNI
        vni = peer_view(lab3, one["id"], "p1")["vni"]
        nft(
            lab3,
            "A",
            f"table inet {table} {{\n chain out {{\n  type filter hook output priority 0;\n"
            f"  udp dport 4789 @th,96,24 {vni} drop\n }}\n}}\n",
        )
        cut = time.monotonic()

        def black_holed() -> dict | None:
            peer = peer_view(lab3, one["id"], "p1")
            return peer if peer["status"] == "error" and BLACK_HOLE in peer["reason"] else None

        peer = wait_for(black_holed, timeout=10, interval=0.2, what=f"'{BLACK_HOLE}' on A")
        print(f"A: error {time.monotonic() - cut:.1f} s after the cut: {peer['reason']}")

        def replica_black_holed() -> dict | None:  # B follows A's probes: it sees it too
            (rep,) = [r for r in lab3.api("B", "GET", "/v1/replicas") if r["vni"] == vni]
            return rep if rep["status"] == "error" and BLACK_HOLE in rep["reason"] else None

        left = cut + 10 - time.monotonic()
        rep = wait_for(replica_black_holed, timeout=left, interval=0.2, what="the same on B")
        print(f"B: error {time.monotonic() - cut:.1f} s after the cut: {rep['reason']}")
        assert re.search(r"since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", peer["reason"]), peer
        # the link and its SA still look fine; the other expansion on it still passes frames
        (link,) = [lk for lk in lab3.api("A", "GET", "/v1/links") if lk["peer"] == "B"]
        assert link["status"]["state"] == "up", link
        mate = peer_view(lab3, other["id"], "p2")
        assert mate["status"] == "active" and mate["tunnel"]["last_answer_at"], mate
        assert metric(scrape(lab3, "A"), "intercloud_tunnels_silent", peer="B") == 1

        nft(lab3, "A", f"delete table inet {table}\n")
        wait_for(
            lambda: peer_view(lab3, one["id"], "p1")["status"] == "active",
            timeout=15,
            what="the black-holed expansion to turn active again",
        )
        assert peer_view(lab3, other["id"], "p2")["status"] == "active"
        wait_for(
            lambda: all(r["status"] == "active" for r in lab3.api("B", "GET", "/v1/replicas")),
            timeout=15,
            what="B's replicas active again",
        )
    finally:
        nft(lab3, "A", f"delete table inet {table}\n", check=False)
        shrink(lab3, "A", "p1", one["id"])
        shrink(lab3, "A", "p2", other["id"])


def b_replicas_answered(lab) -> list | None:
    """B's replicas once each one's tunnel has an answered probe (None before)."""
    replicas = lab.api("B", "GET", "/v1/replicas")
    answered = all(r["tunnel"] and r["tunnel"]["answered"] >= 1 for r in replicas)
    return replicas if answered else None


def test_an_agent_restart_flaps_no_status_on_its_peer(lab3):
    """A's agent stops for longer than a silence takes to be judged (its prober with it; the
    kernel's tunnel still carries the VMs' frames): B's probes through the tunnel go silent,
    but A's API is silent too, so B's replica stays active, and stays so while A comes back
    and its prober resumes. (Before: B said `error`, "no frames through the tunnel", then
    `active`, and A followed it in its re-checks.)"""
    exp = expand(lab3, "A", "p1", "net1", ["B"])
    try:
        wait_for(lambda: answered(lab3, exp["id"], "p1"), 15, what="A's probes answered")
        wait_for(lambda: b_replicas_answered(lab3), 15, what="B's probes answered")
        seen: dict[str, set] = {"replica": set(), "link": set()}

        def watch(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                (rep,) = lab3.api("B", "GET", "/v1/replicas")
                seen["replica"].add((rep["status"], rep["reason"]))
                (link,) = [lk for lk in lab3.api("B", "GET", "/v1/links") if lk["peer"] == "A"]
                seen["link"].add(link["status"]["state"])
                time.sleep(0.3)

        lab3.stop_agent("A")
        try:
            # past a follower's wait for the next request (7 s) and one of B's passes (5 s)
            watch(16)
        finally:
            lab3.start_agent("A")
        watch(20)  # A's first pass, and its prober's first requests
        assert "down" in seen["link"], seen  # B saw A's agent away
        assert seen["replica"] == {("active", "")}, seen
        # A, which asks B of its replicas, never read anything else either
        assert peer_view(lab3, exp["id"], "p1")["status"] == "active"
    finally:
        shrink(lab3, "A", "p1", exp["id"])
