"""Balanced lanes for real: three charons per gateway (kernel-libipsec); the agents place each
VXLAN flow on a lane in turn and pin it there, move a flow only after it was idle, and move a
dead lane's flows to the others. Reordering is counted by the kernel: out-of-order segments
queued by the receiver (TcpExtTCPOFOQueue) and reordering seen by the sender (SACK/timestamps)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from intercloud.domain.lane_balance import GAP_SECONDS
from intercloud.drivers.ipsec.lane_steering import LaneSteering
from intercloud.lab.topology import Lab, lane_dir
from tests.integration import traffic
from tests.integration.test_expansion import expand
from tests.integration.test_lanes import transfer
from tests.waiting import wait_for

LANES = 3
MB = 1_000_000
REORDER = ("TcpExtTCPSACKReorder", "TcpExtTCPTSReorder", "TcpExtTCPRenoReorder")
PATH_REORDER = 8  # reordering events the lab's path makes on its own (see assert_in_order)


@pytest.fixture(scope="module")
def balance_lab():
    """Clouds A and B, three charons each, peered; net1 expanded A -> B, a VM on each side."""
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (network namespaces); run them as root")
    lab = Lab("lb" + secrets.token_hex(3))
    try:
        lab.up(2, lanes=LANES)
        lab.peer("A", "B")
        expand(lab, "A", "p1", "net1", ["B"])
        lab.add_vm("A", "a1", "10.10.0.1/24", network="net1")
        lab.add_vm("B", "b1", "10.10.0.2/24", replica_of="A/net1")
        for cloud in ("A", "B"):  # every lane up on both sides before flows are placed
            wait_for(
                lambda c=cloud: down_lanes(lab, c) == set(),
                timeout=90,
                what=f"{cloud}'s lanes all up",
            )
        yield lab
    finally:
        lab.down()


def steering(lab: Lab, cloud: str) -> LaneSteering:
    return LaneSteering(LANES, 4789, netns=lab.namespace(cloud))


def lane_bytes(lab: Lab, cloud: str = "A") -> list[int]:
    """Bytes the agent's steering put into each lane (its nft counters)."""
    counters = steering(lab, cloud).counters()
    assert counters is not None, "no lane steering table"
    return counters


def down_lanes(lab: Lab, cloud: str) -> set[int] | None:
    """The lanes the agent's rebalancer marked down (None before its table is there)."""
    out = lab.exec(cloud, ["nft", "list", "set", "ip", "intercloud_lanes", "down"]).stdout
    if "type mark" not in out:
        return None
    return {k for k in range(LANES) if f"0x{0x1D0 + k:08x}" in out}


def tcp_counters(lab: Lab, target: str) -> dict[str, int]:
    """The namespace's TCP counters (/proc/net/netstat and snmp, as nstat names them)."""
    text = lab.exec(target, ["cat", "/proc/net/netstat", "/proc/net/snmp"], check=True).stdout
    lines = text.splitlines()
    out = {}
    for head, values in zip(lines[::2], lines[1::2], strict=True):
        kind, *names = head.split()
        for name, value in zip(names, values.split()[1:], strict=True):
            out[kind.rstrip(":") + name] = int(value)
    return out


class Reordering:
    """TCP counters of the sender (a1) and the receiver (b1) from now on."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.start = {vm: tcp_counters(lab, vm) for vm in ("A/a1", "B/b1")}

    def since(self, vm: str) -> dict[str, int]:
        now = tcp_counters(self.lab, vm)
        return {k: v - self.start[vm].get(k, 0) for k, v in now.items()}

    def assert_in_order(self) -> None:
        """Nothing was reordered by the lanes. The counters also move without any lane change:
        0, 1 or 4 events in the first transfer after the lab came up, in about one run in
        five, with no lane marked down and no SA replaced meanwhile (checked), and 0 in every
        later transfer on the same lab. Likely causes: a VM's TCP sends from two CPUs (its
        thread, and the softirq of an arriving ACK) and a veth hands each packet to the
        backlog of the CPU that sent it; and a retransmission undone by timestamps after a
        delay spike of the user-space ESP also counts as one (TcpExtTCPTSReorder).
        Flows moved while busy make far more (measured with this transfer: a flow placed
        again at one packet in 400, 43 and 89 events; one in 50, 433; sprayed, 500-1000),
        so: at most `PATH_REORDER` events at the sender, and when it saw none and lost
        nothing (no retransmission), nothing queued out of order at the receiver."""
        sender, receiver = self.since("A/a1"), self.since("B/b1")
        events = sum(sender[k] for k in REORDER)
        print(
            "sender reorder events", events,
            "retrans", sender["TcpRetransSegs"],
            "receiver ofo", receiver["TcpExtTCPOFOQueue"],
        )  # fmt: skip
        assert events <= PATH_REORDER, {k: sender[k] for k in REORDER}
        if events == 0 and sender["TcpRetransSegs"] == 0:
            assert receiver["TcpExtTCPOFOQueue"] == 0, receiver["TcpExtTCPOFOQueue"]


def grown(before: list[int], after: list[int]) -> list[int]:
    return [a - b for a, b in zip(after, before, strict=True)]


def test_flows_are_split_evenly_over_the_lanes_and_none_is_reordered(balance_lab):
    lab = balance_lab
    counted = Reordering(lab)
    before = lane_bytes(lab)
    transfer(lab, flows=12, size=3 * MB)  # 12 new flows, placed in turn: 4 per lane
    got = grown(before, lane_bytes(lab))
    total = sum(got)
    assert total > 36 * MB, got
    # equal transfers, so the bytes follow the flows: 4 of 12 each (a hash collision of two
    # flows' VXLAN source ports, ~0.2%, would make it 3 and 5)
    assert all(0.2 < g / total < 0.45 for g in got), got
    counted.assert_in_order()


BURSTS = r"""
import socket, sys
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((host, port), timeout=30)
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() != "send":
        break
    s.sendall(bytes(range(256)) * (size // 256))
s.close()
"""

SINK = r"""
import socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[1]))); srv.listen(1)
print("ready", flush=True)
conn, _ = srv.accept(); size = int(sys.argv[2]); pattern = bytes(range(256)) * (size // 256)
buf = b""
while True:
    data = conn.recv(1 << 16)
    if not data:
        break
    buf += data
    while len(buf) >= len(pattern):
        print("ok" if buf[:len(pattern)] == pattern else "corrupt", flush=True)
        buf = buf[len(pattern):]
print("end", len(buf), flush=True)
"""


def test_a_flow_moves_to_another_lane_only_after_an_idle_gap_and_stays_in_order(balance_lab):
    lab = balance_lab
    size = 1 << 21  # a multiple of the pattern's 256 bytes
    counted = Reordering(lab)
    sink = traffic.start(lab, "B/b1", SINK, "7100", str(size))
    source = subprocess.Popen(
        ["ip", "netns", "exec", lab.namespace("A/a1"), sys.executable, "-c", BURSTS,
         "10.10.0.2", "7100", str(size)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert source.stdout is not None and source.stdin is not None and sink.stdout is not None
    assert source.stdout.readline().strip() == "ready"
    lanes_used: list[int] = []
    try:
        # one TCP connection, bursts with idle gaps between them, until it took two lanes: new
        # flows are weighted toward the lighter lanes, so after the test before (whose bytes
        # stay in the counters) the lightest lane may take a few bursts before it is not
        for _ in range(8):
            if len(lanes_used) >= 4 and len(set(lanes_used)) >= 2:
                break
            before = lane_bytes(lab)
            source.stdin.write("send\n")
            source.stdin.flush()
            assert sink.stdout.readline().strip() == "ok"  # all of it arrived, intact
            got = grown(before, lane_bytes(lab))
            lanes_used.append(max(range(LANES), key=lambda k: got[k]))
            assert max(got) > 0.9 * size, got  # a burst stays on one lane
            time.sleep(GAP_SECONDS + 1.5)  # idle longer than the gap: the flow may move
    finally:
        source.communicate(timeout=30)  # closes its stdin (it ends), reads and closes the pipes
        sink.communicate(timeout=30)
    # placed again after each gap, in turn: the same connection took more than one lane
    assert len(set(lanes_used)) >= 2, lanes_used
    counted.assert_in_order()


def test_a_lane_killed_moves_its_share_to_the_other_lanes(balance_lab):
    lab = balance_lab
    lane2 = lane_dir(Path(lab.cloud("A").charon_dir), 2)
    pid = int((lane2 / "run" / "charon.pid").read_text())
    os.kill(pid, signal.SIGKILL)  # A's third charon dies: its TUN device and routes go with it
    wait_for(lambda: down_lanes(lab, "A") == {2}, timeout=30, what="A to mark lane 2 down")
    # B keeps sending into its lane 2 until its DPD notices that A's lane-2 charon is gone
    wait_for(lambda: down_lanes(lab, "B") == {2}, timeout=120, what="B to mark lane 2 down")
    counted = Reordering(lab)
    before = lane_bytes(lab)
    transfer(lab, flows=12, size=3 * MB)
    got = grown(before, lane_bytes(lab))
    total = sum(got)
    assert got[2] == 0 and total > 36 * MB, got  # nothing steered into the dead lane
    assert all(0.35 < g / total < 0.65 for g in got[:2]), got  # its share went to both others
    counted.assert_in_order()


def test_the_reordering_counters_do_see_a_flow_sprayed_over_two_lanes(balance_lab):
    """The control for the tests above: what they would see if steering moved a busy flow.
    One rule put before the agent's sends every packet to lane 0 or 1 in turn."""
    lab = balance_lab
    spray = "udp dport 4789 meta mark set numgen inc mod 2 offset 0x1d0 accept"
    lab.exec("A", ["nft", "insert", "rule", "ip", "intercloud_lanes", "steer", *spray.split()],
             check=True)  # fmt: skip
    try:
        counted = Reordering(lab)
        transfer(lab, flows=2, size=3 * MB)
        sender = counted.since("A/a1")
        events = sum(sender[k] for k in REORDER)
        print("sprayed: sender reorder events", events)
        assert events > PATH_REORDER, {k: sender[k] for k in REORDER}
    finally:
        listing = lab.exec("A", ["nft", "-a", "list", "chain", "ip", "intercloud_lanes", "steer"])
        handle = next(
            line.rsplit("handle", 1)[1].strip()
            for line in listing.stdout.splitlines()
            if "numgen inc mod 2 offset" in line
        )
        lab.exec("A", ["nft", "delete", "rule", "ip", "intercloud_lanes", "steer", "handle",
                       handle], check=True)  # fmt: skip
