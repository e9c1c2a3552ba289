"""Encryption lanes for real: two charons per gateway (kernel-libipsec), the agents steering
VXLAN packets between them by source port, a lane lost and found again."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from intercloud.drivers.ipsec import strongswan
from intercloud.drivers.ipsec.lanes import LaneSteering
from intercloud.lab.charon import Charon
from intercloud.lab.topology import Lab, lane_dir
from tests.integration import traffic
from tests.integration.test_expansion import expand, ping
from tests.waiting import wait_for


@pytest.fixture(scope="module")
def lanes_lab():
    """Clouds A and B, two charons each, peered; net1 expanded A -> B with a VM on each side."""
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (network namespaces); run them as root")
    lab = Lab("l" + secrets.token_hex(3))
    try:
        lab.up(2, lanes=2)
        lab.peer("A", "B")
        expand(lab, "A", "p1", "net1", ["B"])
        lab.add_vm("A", "a1", "10.10.0.1/24", network="net1")
        lab.add_vm("B", "b1", "10.10.0.2/24", replica_of="A/net1")
        yield lab
    finally:
        lab.down()


def lane_socket(lab: Lab, cloud: str, lane: int) -> str:
    return str(lane_dir(Path(lab.cloud(cloud).charon_dir), lane) / "charon.vici")


def bytes_out(lab: Lab, cloud: str, lane: int) -> int:
    """ESP bytes sent by the link's installed CHILD_SAs in lane `lane`'s charon, read from it."""
    session = strongswan.unix_session(lane_socket(lab, cloud, lane))
    try:
        return sum(
            int(child.get("bytes-out", 0))
            for item in session.list_sas()
            for sa in item.values()
            for child in (sa.get("child-sas") or {}).values()
            if child.get("state") == b"INSTALLED"
        )
    finally:
        session.transport.close()


def transfer(lab: Lab, flows: int = 16, size: int = 1_000_000) -> None:
    """`flows` TCP transfers a1 -> b1 at once (each its own source port), checksums compared."""
    sinks = [traffic.start(lab, "B/b1", traffic.TCP_SINK, str(7000 + i)) for i in range(flows)]
    sources = [
        subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                lab.namespace("A/a1"),
                sys.executable,
                "-c",
                traffic.TCP_SOURCE,
                "10.10.0.2",
                str(7000 + i),
                str(size),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(flows)
    ]
    for sink, source in zip(sinks, sources, strict=True):
        sent = source.communicate(timeout=120)[0].split()
        got = sink.communicate(timeout=120)[0].split()
        assert sent == got and int(got[0]) == size, (sent, got)


def link_ipsec(lab: Lab) -> dict:
    return lab.api("A", "GET", "/v1/links/B")["status"]["ipsec"]


def test_flows_are_spread_over_both_lanes_and_arrive_intact(lanes_lab):
    lab = lanes_lab
    gw = lab.namespace("A")
    rules = lab.exec("A", ["ip", "rule", "show"]).stdout
    assert "fwmark 0x1d1 lookup 221" in rules and "not from all fwmark 0x1c0/0xfff0" in rules
    # the agent's steering is in place and another pass would change nothing
    assert LaneSteering(2, 4789, netns=gw).ensure() is False
    before = [bytes_out(lab, "A", k) for k in (0, 1)]
    transfer(lab)
    after = [bytes_out(lab, "A", k) for k in (0, 1)]
    grown = [a - b for a, b in zip(after, before, strict=True)]
    # 16 flows of 1 MB, each on the lane its VXLAN source port picks: both lanes get some
    # (all 16 on one lane: a chance of 1 in 32,768)
    assert min(grown) > 1_000_000, grown
    st = wait_for(
        lambda: (v := link_ipsec(lab)).get("lanes") and v["lanes"][0]["up"] and v,
        timeout=20,
        what="A's link status to show lane 1 up",
    )
    assert st["ike_state"] == "ESTABLISHED" and st["lanes"][0]["ike_state"] == "ESTABLISHED"


def test_steering_removed_by_hand_comes_back(lanes_lab):
    lab = lanes_lab
    lab.exec("A", ["ip", "rule", "del", "priority", "111"], check=True)
    lab.exec("A", ["nft", "delete", "table", "ip", "intercloud_lanes"], check=True)
    wait_for(
        lambda: (
            LaneSteering(2, 4789, netns=lab.namespace("A")).rules() == {(111, 0x1D1, 221)}
            and "intercloud_lanes" in lab.exec("A", ["nft", "list", "tables"]).stdout
        ),
        timeout=20,
        what="A's agent to restore its lane steering",
    )
    assert ping(lab, "A/a1", "10.10.0.2", count=2)


def test_a_lane_lost_moves_its_flows_to_lane_0_and_returns(lanes_lab):
    lab = lanes_lab
    lane1 = lane_dir(Path(lab.cloud("B").charon_dir), 1)
    pid = int((lane1 / "run" / "charon.pid").read_text())
    os.kill(pid, signal.SIGKILL)  # B's second charon dies: its SAs are gone without a word
    # A notices only by DPD; until then its lane-1 flows are lost, so wait for A's side to go
    wait_for(
        lambda: not link_ipsec(lab)["lanes"][0]["up"],
        timeout=90,
        what="A to report lane 1 down",
    )
    assert link_ipsec(lab)["ike_state"] == "ESTABLISHED"  # the link itself stays up
    route = lab.exec("A", ["ip", "route", "show", "table", "221"]).stdout
    assert route.strip() == "", route  # no SA, no route: lane-1 flows take lane 0
    lane0 = bytes_out(lab, "A", 0)
    transfer(lab)
    assert bytes_out(lab, "A", 0) - lane0 > 16_000_000  # all of it through lane 0
    Charon(lab.namespace("B"), lane1, lane=1).start()
    wait_for(
        lambda: link_ipsec(lab)["lanes"][0]["up"],
        timeout=90,
        what="lane 1 to come back once B's charon is back",
    )
    wait_for(
        lambda: lab.exec("A", ["ip", "route", "show", "table", "221"]).stdout.strip(),
        timeout=10,
        what="lane 1's route to come back with its SA",
    )
    before = bytes_out(lab, "A", 1)
    transfer(lab)
    assert bytes_out(lab, "A", 1) - before > 1_000_000  # lane 1 carries flows again


def test_steering_back_to_one_lane_removes_table_and_rules(namespaces):
    ns = namespaces("lanes")
    assert LaneSteering(3, 4789, netns=ns).ensure() is True
    assert LaneSteering(3, 4789, netns=ns).rules() == {(111, 0x1D1, 221), (112, 0x1D2, 222)}
    one = LaneSteering(1, 4789, netns=ns)
    assert one.ensure() is True
    assert one.rules() == set() and one.tag() is None
    assert one.ensure() is False
