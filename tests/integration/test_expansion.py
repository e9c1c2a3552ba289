"""Expansion end to end in namespaces: real agents, real kernel bridges and VXLAN."""

from __future__ import annotations

import re
import subprocess
import sys
import time

from intercloud.errors import NotFound
from tests.integration.helpers import capture
from tests.waiting import wait_for


def links_in(lab, cloud: str, prefix: str = "ic") -> set[str]:
    out = lab.exec(cloud, ["ip", "-o", "link", "show"]).stdout
    names = {m.group(1).split("@")[0] for m in re.finditer(r"^\d+: ([^:]+):", out, re.M)}
    return {n for n in names if n.startswith(prefix)}


def mac_of(lab, target: str) -> str:
    out = lab.exec(target, ["cat", "/sys/class/net/eth0/address"], check=True).stdout
    return out.strip()


def ping(lab, target: str, ip: str, count: int = 3) -> bool:
    r = lab.exec(target, ["ping", "-c", str(count), "-i", "0.2", "-W", "2", ip])
    return r.returncode == 0


def expand(lab, cloud: str, project: str, network: str, peers: list[str]) -> dict:
    exp = lab.api(
        cloud, "POST", "/v1/expansions", {"network": network, "peers": peers}, token=project
    )
    return wait_for(
        lambda: _active(lab, cloud, project, exp["id"]),
        timeout=30,
        what=f"expansion of {network} to {peers} to become active",
    )


def _active(lab, cloud, project, uid):
    exp = lab.api(cloud, "GET", f"/v1/expansions/{uid}", token=project)
    return exp if exp["status"] == "active" else None


def shrink(lab, cloud: str, project: str, uid: str) -> None:
    lab.api(cloud, "DELETE", f"/v1/expansions/{uid}", token=project)

    def gone():
        try:
            lab.api(cloud, "GET", f"/v1/expansions/{uid}", token=project)
            return False
        except NotFound:
            return True

    wait_for(gone, timeout=30, what=f"expansion {uid} to be deleted")


def test_expand_a_to_b_pings_and_arp_resolves_then_shrink_cleans_up(lab3, vms):
    before_a, before_b = links_in(lab3, "A"), links_in(lab3, "B")
    exp = expand(lab3, "A", "p1", "net1", ["B"])
    a1 = vms("A", "a1", "10.10.0.1/24", network="net1")
    b1 = vms("B", "b1", "10.10.0.2/24", replica_of="A/net1")
    assert ping(lab3, a1, "10.10.0.2")
    assert ping(lab3, b1, "10.10.0.1")
    neigh = lab3.exec(a1, ["ip", "neigh", "show", "10.10.0.2"]).stdout
    assert mac_of(lab3, b1) in neigh.lower(), neigh
    vni = exp["peers"][0]["vni"]
    assert f"icv{vni}" in links_in(lab3, "A") and f"icv{vni}" in links_in(lab3, "B")

    shrink(lab3, "A", "p1", exp["id"])
    wait_for(
        lambda: links_in(lab3, "A") == before_a and links_in(lab3, "B") == before_b,
        timeout=20,
        what="every interface the agents made to be removed",
    )
    assert lab3.api("B", "GET", "/v1/replicas") == []
    assert not ping(lab3, a1, "10.10.0.2", count=2)


def test_overlapping_projects_over_one_link_stay_isolated(lab3, vms):
    e1 = expand(lab3, "A", "p1", "net1", ["B"])
    e2 = expand(lab3, "A", "p2", "net2", ["B"])
    assert e1["peers"][0]["vni"] != e2["peers"][0]["vni"]
    a1 = vms("A", "a1", "10.10.0.1/24", network="net1")
    a2 = vms("A", "a2", "10.10.0.1/24", network="net2")  # same address, other project
    b1 = vms("B", "b1", "10.10.0.2/24", replica_of="A/p1/net1")
    b2 = vms("B", "b2", "10.10.0.2/24", replica_of="A/p2/net2")
    p1_macs = {mac_of(lab3, a1), mac_of(lab3, b1)}
    p2_macs = {mac_of(lab3, a2), mac_of(lab3, b2)}
    try:
        with capture(lab3.namespace(b2), "eth0") as cap:
            assert ping(lab3, a1, "10.10.0.2")
            lab3.exec(a1, ["ping", "-b", "-c", "3", "-i", "0.2", "-W", "1", "10.10.0.255"])
            lab3.exec(a1, ["arping", "-c", "2", "-I", "eth0", "10.10.0.77"])
            assert ping(lab3, a2, "10.10.0.2")  # p2's own traffic does arrive
        seen = " ".join(cap.lines).lower()
        assert not any(mac in seen for mac in p1_macs), cap.lines
        assert any(mac in seen for mac in p2_macs), "positive control: p2 frames must be seen"
    finally:
        shrink(lab3, "A", "p1", e1["id"])
        shrink(lab3, "A", "p2", e2["id"])


def test_broadcast_of_a_network_expanded_to_b_never_reaches_c(lab3, vms):
    exp = expand(lab3, "A", "p1", "net1", ["B"])
    a1 = vms("A", "a1", "10.10.0.1/24", network="net1")
    vms("B", "b1", "10.10.0.2/24", replica_of="A/net1")
    c1 = vms("C", "c1", "10.10.0.3/24", network="net1")  # C's own net1, same range
    # Links are encrypted: what C receives from A is decrypted into ipsec0 (the libipsec TUN
    # device), so VXLAN for C would show there; B's ipsec0 is the positive control.
    try:
        with (
            capture(lab3.namespace("C"), "ipsec0", "udp port 4789") as tunnel_c,
            capture(lab3.namespace(c1), "eth0") as vm_c,
            capture(lab3.namespace("B"), "ipsec0", "udp port 4789") as control,
        ):
            lab3.exec(a1, ["ping", "-b", "-c", "5", "-i", "0.2", "-W", "1", "10.10.0.255"])
            lab3.exec(a1, ["arping", "-c", "3", "-I", "eth0", "10.10.0.3"])
        assert tunnel_c.lines == [], tunnel_c.lines
        assert not any(mac_of(lab3, a1) in ln.lower() for ln in vm_c.lines), vm_c.lines
        assert control.lines, "positive control: the broadcasts must reach B over VXLAN"
    finally:
        shrink(lab3, "A", "p1", exp["id"])


def test_agent_restart_under_ping_loses_nothing_and_changes_nothing(lab3, vms):
    exp = expand(lab3, "A", "p1", "net1", ["B"])
    a1 = vms("A", "a1", "10.10.0.1/24", network="net1")
    vms("B", "b1", "10.10.0.2/24", replica_of="A/net1")
    assert ping(lab3, a1, "10.10.0.2")
    try:
        pinger = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                lab3.namespace(a1),
                "ping",
                "-c",
                "100",
                "-i",
                "0.05",
                "-W",
                "1",
                "10.10.0.2",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        time.sleep(1)  # the ping runs before the restarts: part of the scenario
        lab3.restart_agent("A")
        lab3.restart_agent("B")
        out, _ = pinger.communicate(timeout=60)
        assert " 0% packet loss" in out, out
        # the new agents converge with no change on the host
        for cloud in ("A", "B"):
            stats = wait_for(
                lambda c=cloud: _passes(lab3, c, 2),
                timeout=20,
                what=f"two reconciler passes on {cloud}",
            )
            assert stats["changes_since_start"] == 0, stats
            assert stats["last_error"] is None, stats
        assert lab3.api("A", "GET", f"/v1/expansions/{exp['id']}", token="p1")["status"] == "active"
    finally:
        shrink(lab3, "A", "p1", exp["id"])


def _passes(lab, cloud, n):
    stats = lab.api(cloud, "GET", "/v1/status")["reconciler"]
    return stats if stats["passes"] >= n else None


def test_bad_input_through_the_real_agent_changes_nothing_on_the_host(lab3):
    # earlier tests' shrinks finish removing their devices asynchronously: let them settle
    wait_for(
        lambda: not links_in(lab3, "A") and not links_in(lab3, "B"),
        timeout=20,
        what="earlier expansions' devices to be gone",
    )
    before = links_in(lab3, "A"), links_in(lab3, "B")
    status, body = lab3.api_raw(
        "A", "POST", "/v1/expansions", {"network": "net1", "peers": ["Z"]}, token="p1"
    )
    assert status == 404 and body["error"]["field"] == "peers"
    status, body = lab3.api_raw(
        "A", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"], "vni": 0}, token="p1"
    )
    assert status == 422 and body["error"]["field"] == "vni"
    status, body = lab3.api_raw(
        "A", "POST", "/v1/links", {"peer": "B", "local_endpoint": "198.18.1.2"}
    )
    assert status == 409
    # an unsigned federation call over the underlay, from A's gateway to B's agent
    url = f"https://{lab3.ip('B')}:8700/v1/federation/replicas/0b6f3a52-0000-4000-8000-000000000009"
    script = (
        (
            "import httpx, ssl; r = httpx.put(%r, json={'project': 'p1', 'network': 'net1', "
            "'cidr': '10.10.0.0/24'}, verify=ssl.create_default_context(cafile=%s)); "
            "print(r.status_code)"
        )
        .replace("%r", repr(url))
        .replace("%s", repr(lab3.cloud("B").ca))
    )
    r = lab3.exec("A", [sys.executable, "-c", script])
    assert r.stdout.strip() == "401", r.stdout + r.stderr
    assert lab3.api("B", "GET", "/v1/replicas") == []
    time.sleep(1)  # a window in which nothing may change: it is the check
    assert (links_in(lab3, "A"), links_in(lab3, "B")) == before
