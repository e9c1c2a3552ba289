"""The OVS data plane on real Open vSwitch (userspace datapath), one OVS per gateway namespace.

Gateways A, B, C hang off one underlay switch (a Linux bridge in its own namespace,
198.18.0.0/24 on each gateway's br-phy). Each gateway has a br-int played by the test as the
Neutron OVS agent would run it (NORMAL, VM access ports with tag=<local VLAN> and
other_config:net_uuid), with DIFFERENT local VLANs on each side, so a ping across proves the
VLAN <-> tunnel id translation. Network 1 spans A (origin), B and C; network 2 only A and B.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import secrets
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from intercloud.domain.hoststate import Attachment, Bridge, HostState, Vxlan
from intercloud.domain.plan import plan
from intercloud.drivers.dataplane.ovs import OvsDataplane
from intercloud.errors import DriverError
from intercloud.lab import namespaces as hosts
from intercloud.lab import nsexec
from intercloud.lab import ovs_instance as labovs
from intercloud.reconciler.desired import LinkView, NetworkWant, PortWant, build
from tests.integration.helpers import capture
from tests.integration.namespaces import Namespaces
from tests.waiting import wait_for

PREFIX = "ic"
VM_MTU = 1400  # room for any of the three encapsulations on a 1500-byte underlay
UNDERLAY = {"A": "198.18.0.1", "B": "198.18.0.2", "C": "198.18.0.3"}
# Neutron network ids (net_uuid of the VM ports on br-int)
NET1_A = "6e3f1a00-0000-4000-8000-0000000001aa"
NET1_B = "6e3f1a00-0000-4000-8000-0000000001bb"
NET1_C = "6e3f1a00-0000-4000-8000-0000000001cc"
NET2_A = "6e3f1a00-0000-4000-8000-0000000002aa"
NET2_B = "6e3f1a00-0000-4000-8000-0000000002bb"
# (gateway, network) -> (local VLAN on that gateway's br-int, net_uuid, VM address)
VMS = {
    ("A", 1): (5, NET1_A, "10.1.0.1"),
    ("B", 1): (7, NET1_B, "10.1.0.2"),
    ("C", 1): (9, NET1_C, "10.1.0.3"),
    ("A", 2): (6, NET2_A, "10.2.0.1"),
    ("B", 2): (8, NET2_B, "10.2.0.2"),
}


class Lab:
    def __init__(self) -> None:
        self.tag = "o" + secrets.token_hex(2) + "-"
        self.namespaces = Namespaces()
        self.ovs: dict[str, labovs.OvsInstance] = {}

    def ns(self, name: str) -> str:
        return self.tag + name

    def vm(self, gw: str, net: int) -> str:
        return self.ns(f"vm{gw.lower()}{net}")

    def up(self) -> None:
        sw = self.ns("ul")
        self.namespaces.add(sw)
        hosts.add_bridge(sw, "sw")
        for gw, addr in UNDERLAY.items():
            g = self.ns(gw)
            self.namespaces.add(g)
            self.namespaces.veth(g, "ul0", sw, f"to-{gw}")
            labovs.offload_off(sw, f"to-{gw}")
            hosts.set_up(sw, f"to-{gw}", master="sw")
            inst = labovs.start_ovs(g)
            self.ovs[gw] = inst
            labovs.add_underlay(inst, "ul0", f"{addr}/24")
            labovs.add_bridge(inst, "br-int")
        for (gw, net), (tag, uuid, ip) in VMS.items():
            self.namespaces.adopt(self.vm(gw, net))
            labovs.add_vm(
                self.ovs[gw], self.vm(gw, net), f"vm{net}", tag, uuid, f"{ip}/24", mtu=VM_MTU
            )

    def down(self) -> None:
        errors = []
        for inst in self.ovs.values():
            try:
                labovs.stop_ovs(inst)
            except Exception as exc:  # keep going: everything must go
                errors.append(exc)
        try:
            self.namespaces.close()
        except AssertionError as exc:
            errors.append(exc)
        assert not errors, errors

    def ping(self, gw: str, net: int, dst: str, tries: int = 10) -> bool:
        """True once one ping gets through (the first ones may go while OVS resolves the
        underlay ARP of a tunnel's remote)."""
        for _ in range(tries):
            proc = subprocess.run(
                nsexec.exec_argv(self.vm(gw, net), ["ping", "-c", "1", "-W", "1", dst]),
                capture_output=True,
                check=False,
            )
            if proc.returncode == 0:
                return True
        return False

    def no_ping(self, gw: str, net: int, dst: str) -> bool:
        proc = subprocess.run(
            nsexec.exec_argv(self.vm(gw, net), ["ping", "-c", "2", "-i", "0.2", "-W", "1", dst]),
            capture_output=True,
            check=False,
        )
        return proc.returncode != 0


def running(lab: Lab) -> Iterator[Lab]:
    """A module's lab, up for its tests and down after them, even when one fails."""
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (network namespaces); run them as root")
    try:
        lab.up()
        yield lab
    finally:
        lab.down()


def cleaned(make: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """`make` for a test, every driver it made cleaned up and closed after the test."""
    made: list[Any] = []

    def tracked(*args: Any) -> Any:
        dp = make(*args)
        made.append(dp)
        return dp

    try:
        yield tracked
    finally:
        for dp in made:
            with contextlib.suppress(Exception):
                dp.cleanup()
            dp.close()


@pytest.fixture(scope="module")
def lab():
    yield from running(Lab())


@pytest.fixture
def drivers(lab):
    """make(gw, tunnel_type) -> an OvsDataplane on that gateway's OVS; all cleaned up after."""

    def make(gw: str, tunnel_type: str = "vxlan") -> OvsDataplane:
        inst = lab.ovs[gw]
        return OvsDataplane(PREFIX, inst.db, inst.rundir, tunnel_type=tunnel_type)

    yield from cleaned(make)


def net(
    bridge: str,
    net_uuid: str | None,
    tunnels: list[tuple[str, int, str, str]],
    isolated: bool,
    state: HostState | None = None,
) -> HostState:
    """A desired state (added to `state`): network `bridge` with local side `net_uuid` and
    tunnels (name, vni, local, remote)."""
    state = state or HostState()
    state.add(Bridge(bridge))
    if net_uuid:
        state.add(Attachment(net_uuid, bridge))
    for name, vni, local, remote in tunnels:
        state.add(Vxlan(name, vni, local, remote, bridge, mtu=1500, isolated=isolated))
    return state


def apply(dp: OvsDataplane, desired: HostState) -> list[str]:
    steps = plan(desired, dp.observe())
    for step in steps:
        getattr(dp, step.verb)(step.obj)
    return [s.describe() for s in steps]


def assert_converged(dp: OvsDataplane, desired: HostState) -> None:
    observed = dp.observe()
    seen = observed.state
    assert seen.bridges == desired.bridges
    assert seen.vxlans == desired.vxlans
    assert seen.attachments == desired.attachments
    assert seen.no_forward == desired.no_forward
    assert plan(desired, observed) == []


A, B, C = UNDERLAY["A"], UNDERLAY["B"], UNDERLAY["C"]
ENCAP = {"vxlan": "udp dst port 4789", "geneve": "udp dst port 6081", "gre": "ip proto 47"}


@pytest.mark.parametrize("tunnel_type", ["vxlan", "geneve", "gre"])
def test_ping_across_with_vlan_translation(lab, drivers, tunnel_type):
    a, b = drivers("A", tunnel_type), drivers("B", tunnel_type)
    want_a = net("icbe1", NET1_A, [("icv101", 101, A, B)], isolated=False)
    want_b = net("icbr1", NET1_B, [("icv101", 101, B, A)], isolated=True)
    assert apply(a, want_a) and apply(b, want_b)
    assert lab.ping("A", 1, "10.1.0.2"), f"no ping A->B over {tunnel_type}"
    # and the underlay carries exactly that encapsulation
    with capture(lab.ns("B"), "ul0", ENCAP[tunnel_type]) as seen:
        assert lab.ping("A", 1, "10.1.0.2")
    assert seen.lines, f"no {tunnel_type} packet on B's underlay"
    iface = lab.ovs["A"].vsctl("get", "interface", a.tunnel_port(want_a.vxlans["icv101"]), "type")
    assert iface.strip() == tunnel_type
    # second pass: nothing to do, and observe reports exactly what was asked
    assert apply(a, want_a) == [] and apply(b, want_b) == []
    assert_converged(a, want_a)
    assert_converged(b, want_b)


def test_wrong_vni_does_not_pass(lab, drivers):
    """Tunnel ids isolate: B expects 102 where A sends 101."""
    a, b = drivers("A"), drivers("B")
    apply(a, net("icbe1", NET1_A, [("icv101", 101, A, B)], isolated=False))
    apply(b, net("icbr1", NET1_B, [("icv102", 102, B, A)], isolated=True))
    assert lab.no_ping("A", 1, "10.1.0.2")


def three_gateways(drivers, no_forward: set[tuple[str, str]] = frozenset()):
    a, b, c = drivers("A"), drivers("B"), drivers("C")
    want_a = net("icbe1", NET1_A, [("icv101", 101, A, B), ("icv102", 102, A, C)], False)
    net("icbe2", NET2_A, [("icv201", 201, A, B)], False, want_a)
    want_a.no_forward = set(no_forward)
    want_b = net("icbr1", NET1_B, [("icv101", 101, B, A)], True)
    net("icbr2", NET2_B, [("icv201", 201, B, A)], True, want_b)
    want_c = net("icbr1", NET1_C, [("icv102", 102, C, A)], True)
    for dp, want in ((a, want_a), (b, want_b), (c, want_c)):
        apply(dp, want)
        assert_converged(dp, want)
    return (a, want_a), (b, want_b), (c, want_c)


def test_relay_isolation_and_flooding_scope(lab, drivers):
    (a, want_a), (b, want_b), (c, want_c) = three_gateways(drivers)
    # one shared tunnel port per peer at A, though A->B carries two networks
    ports = lab.ovs["A"].vsctl("list-ports", "br-cloud").split()
    assert sorted(p for p in ports if p.startswith("ict")) == sorted(
        {a.tunnel_port(want_a.vxlans[n]) for n in ("icv101", "icv102")}
    )
    assert lab.ping("A", 1, "10.1.0.2") and lab.ping("A", 1, "10.1.0.3")
    assert lab.ping("A", 2, "10.2.0.2")
    # B and C have no tunnel to each other: A relays (its members are isolated)
    assert lab.ping("B", 1, "10.1.0.3"), "no relay B->C via the origin A"

    # Network 2 is expanded to B only: C must see none of its frames, B must see them.
    vni2 = "udp dst port 4789 and ( udp[12:4] >> 8 ) = 201"
    with capture(lab.ns("C"), "ul0", vni2) as at_c, capture(lab.ns("B"), "ul0", vni2) as at_b:
        broadcast = ["ping", "-b", "-c", "3", "-i", "0.2", "-w", "1", "10.2.0.255"]
        subprocess.run(
            nsexec.exec_argv(lab.vm("A", 2), broadcast),
            capture_output=True,
            check=False,
        )
        assert lab.ping("A", 2, "10.2.0.2")
    assert at_b.lines, "B saw no frame of network 2: the capture proves nothing"
    assert at_c.lines == [], f"C got frames of a network not expanded to it: {at_c.lines}"

    # no_forward at the origin: B<->C are no longer relayed, the rest still works
    pairs = {("icv101", "icv102"), ("icv102", "icv101")}
    want_a.no_forward = pairs
    assert "ensure_no_forward icv101>icv102,icv102>icv101" in apply(a, want_a)
    assert_converged(a, want_a)
    assert lab.no_ping("B", 1, "10.1.0.3")
    assert lab.ping("A", 1, "10.1.0.2") and lab.ping("A", 1, "10.1.0.3")
    want_a.no_forward = set()
    apply(a, want_a)
    assert lab.ping("B", 1, "10.1.0.3")

    # A relaying member must not be isolated: with A's tunnels isolated, B->C stops
    iso = HostState()
    net("icbe1", NET1_A, [("icv101", 101, A, B), ("icv102", 102, A, C)], True, iso)
    net("icbe2", NET2_A, [("icv201", 201, A, B)], True, iso)
    apply(a, iso)
    assert_converged(a, iso)
    assert lab.no_ping("B", 1, "10.1.0.3")
    assert lab.ping("A", 1, "10.1.0.3")


def test_repairs_drift_and_cleans_up(lab, drivers):
    (a, want_a), (b, want_b), (c, want_c) = three_gateways(drivers)
    assert lab.ping("B", 1, "10.1.0.1")

    # someone deletes B's tunnel port to A (shared by both networks): observe says so, and
    # that the flows no longer match; the plan re-creates both tunnels, rewrites the table
    port = b.tunnel_port(want_b.vxlans["icv101"])
    assert port == b.tunnel_port(want_b.vxlans["icv201"])
    lab.ovs["B"].vsctl("del-port", "br-cloud", port)
    assert lab.no_ping("B", 1, "10.1.0.1")
    steps = apply(b, want_b)
    assert steps == [
        "remove_link icv101",
        "remove_link icv201",
        "ensure_bridge icbr1",
        "ensure_bridge icbr2",
        "ensure_vxlan icv101",
        "ensure_vxlan icv201",
    ]
    assert_converged(b, want_b)
    assert lab.ping("B", 1, "10.1.0.1")

    # someone deletes our patch port in C's br-int: the plan puts it back
    lab.ovs["C"].vsctl("del-port", "br-int", c.patch_names()[0])
    assert lab.no_ping("C", 1, "10.1.0.1")
    assert apply(c, want_c) == ["ensure_bridge icbr1"]
    assert_converged(c, want_c)
    assert lab.ping("C", 1, "10.1.0.1")

    # someone wipes C's flows: the plan rewrites them
    lab.ovs["C"].ofctl("br-cloud", "del-flows")
    assert plan(want_c, c.observe()) != []
    apply(c, want_c)
    assert_converged(c, want_c)
    assert lab.ping("C", 1, "10.1.0.1")

    # the Neutron agent re-tags network 1 on A: the flows follow the new VLAN
    lab.ovs["A"].vsctl("set", "port", "vm1", "tag=15")
    assert plan(want_a, a.observe()) != []
    apply(a, want_a)
    assert_converged(a, want_a)
    assert lab.ping("A", 1, "10.1.0.2")
    lab.ovs["A"].vsctl("set", "port", "vm1", "tag=5")
    assert apply(a, want_a) == ["ensure_bridge icbe1", "ensure_bridge icbe2"]
    assert_converged(a, want_a)

    # shrinking: network 2 leaves A; its tunnel port stays (shared with network 1)
    shrunk = net("icbe1", NET1_A, [("icv101", 101, A, B), ("icv102", 102, A, C)], False)
    steps = apply(a, shrunk)
    assert steps == [f"detach {NET2_A}", "remove_link icv201", "remove_link icbe2"]
    assert_converged(a, shrunk)
    assert lab.no_ping("A", 2, "10.2.0.2")
    assert lab.ping("A", 1, "10.1.0.2")
    # removing a network's bridge forgets its attachment too (no record outlives it)
    a.remove_link("icbe1")
    assert a.observe().state.attachments == {}
    assert not [k for k in a.ovsdb.records(a.br_cloud) if k.startswith("ic:attach:")]
    apply(a, shrunk)
    assert_converged(a, shrunk)

    # cleanup: no br-cloud, no patch port in br-int, br-int and its VMs untouched
    for gw, dp in (("A", a), ("B", b), ("C", c)):
        dp.cleanup()
        inst = lab.ovs[gw]
        assert (
            subprocess.run(
                ["ovs-vsctl", f"--db={inst.db}", "br-exists", "br-cloud"], check=False
            ).returncode
            == 2
        )
        ports = inst.vsctl("list-ports", "br-int").split()
        assert [p for p in ports if p.startswith(PREFIX)] == [], ports
        assert "vm1" in ports
        assert dp.observe().state == HostState()


def iperf(lab: Lab, gw: str, net: int, dst_gw: str, dst: str, seconds: int = 2) -> float:
    """TCP Mbit/s received from VM (gw, net) by the VM at `dst` (on gateway dst_gw)."""
    server = subprocess.Popen(
        nsexec.exec_argv(lab.vm(dst_gw, net), ["iperf3", "-s", "-1"]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        listening = nsexec.exec_argv(lab.vm(dst_gw, net), ["ss", "-ltnH", "sport = :5201"])
        wait_for(
            lambda: subprocess.run(listening, capture_output=True, text=True).stdout.strip(),
            5,
            0.1,
            "iperf3 to listen",
        )
        out = subprocess.run(
            nsexec.exec_argv(lab.vm(gw, net), ["iperf3", "-c", dst, "-t", str(seconds), "-J"]),
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=False,
        ).stdout
        result = json.loads(out)
        assert "error" not in result, result["error"]
        return result["end"]["sum_received"]["bits_per_second"] / 1e6
    finally:
        server.kill()
        server.wait()


def meter_rates(lab: Lab, gw: str) -> list[str]:
    """The meters on br-cloud as 'meter=N rate=R' (the test may read OVS's text; the driver
    does not)."""
    out = lab.ovs[gw].ofctl("br-cloud", "dump-meters", "-O", "OpenFlow13")
    return re.findall(r"meter=\d+|rate=\d+", out)


RATE = 10  # Mbit/s


def test_rate_limit_meters_only_the_copy_to_that_peer(lab, drivers):
    (a, want_a), _, _ = three_gateways(drivers)
    assert lab.ping("A", 1, "10.1.0.2") and lab.ping("A", 1, "10.1.0.3")
    free = iperf(lab, "A", 1, "B", "10.1.0.2")
    assert free > 3 * RATE, f"without a limit only {free:.1f} Mbit/s: the test proves nothing"

    # network 1 towards B limited: an in-place change (the tunnel port stays)
    limited = dataclasses.replace(want_a.vxlans["icv101"], rate_mbit=RATE)
    want_a.add(limited)
    before = lab.ovs["A"].vsctl("list-ports", "br-cloud").split()
    assert apply(a, want_a) == ["ensure_vxlan icv101"]
    assert_converged(a, want_a)
    assert a.observe().state.vxlans["icv101"].rate_mbit == RATE
    assert lab.ovs["A"].vsctl("list-ports", "br-cloud").split() == before
    assert meter_rates(lab, "A") == ["meter=1", f"rate={RATE * 1000}"]
    to_b = iperf(lab, "A", 1, "B", "10.1.0.2")
    # Unicast is flooded to all of the network's peers (no MAC learning): every frame to C
    # also has a copy to B through the meter. Were the meter's drop to end the whole action
    # list, C would get the limited rate too.
    to_c = iperf(lab, "A", 1, "C", "10.1.0.3")
    print(f"to B (limited to {RATE}) {to_b:.1f} Mbit/s, to C {to_c:.1f}, before {free:.1f}")
    assert 0.3 * RATE <= to_b <= 1.2 * RATE
    assert to_c > 3 * RATE
    assert lab.ping("B", 1, "10.1.0.3"), "relay through the origin broken by the meter"

    # someone deletes the meter (OpenFlow takes its flows along): the plan puts both back
    lab.ovs["A"].ofctl("br-cloud", "del-meters", "-O", "OpenFlow13")
    assert apply(a, want_a) == ["ensure_bridge icbe1", "ensure_bridge icbe2"]
    assert_converged(a, want_a)
    assert meter_rates(lab, "A") == ["meter=1", f"rate={RATE * 1000}"]

    # a new rate is a meter change; no limit removes the meter
    want_a.add(dataclasses.replace(limited, rate_mbit=2 * RATE))
    assert apply(a, want_a) == ["ensure_vxlan icv101"]
    assert meter_rates(lab, "A") == ["meter=1", f"rate={2 * RATE * 1000}"]
    want_a.add(dataclasses.replace(limited, rate_mbit=None))
    assert apply(a, want_a) == ["ensure_vxlan icv101"]
    assert_converged(a, want_a)
    assert meter_rates(lab, "A") == []
    assert lab.ping("A", 1, "10.1.0.2")


def test_refusals(lab, drivers):
    a = drivers("A")
    apply(a, net("icbe1", NET1_A, [], isolated=False))
    with pytest.raises(DriverError, match="cannot clamp"):
        a.ensure_mss_clamp({"icv101": 1360})
    with pytest.raises(DriverError, match="no such network"):
        a.ensure_vxlan(Vxlan("icv101", 101, A, B, "icbe9"))
    with pytest.raises(DriverError, match="not a Neutron network id"):
        a.attach(Attachment("no-such-net", "icbe1"))
    assert a.interface_kind(NET1_A) == "other"
    assert a.interface_kind("no-such-net") is None
    assert a.interface_kind("vm1") is None
    with pytest.raises(DriverError):
        OvsDataplane(PREFIX, "unix:/x", "/x", tunnel_type="ipip")


def test_nothing_left_behind(lab):
    """Runs last in this module: every driver cleaned up (the fixture checks the rest)."""
    for gw in "ABC":
        out = lab.ovs[gw].vsctl("list-br").split()
        assert out == ["br-int", "br-phy"], out
    assert len(lab.namespaces) == 4 + len(VMS)
    assert all(hosts.exists(n) for n in lab.namespaces)


def test_desired_state_from_the_reconciler_builder(lab, drivers):
    """The reconciler's own builder, asking the driver what a Neutron network id is."""
    a, b = drivers("A"), drivers("B")

    def desired(dp: OvsDataplane, key: str, uuid: str, peer: str, here: str, there: str, iso: bool):
        # the origin relays between its peers (here B and a C not built yet); a member not
        relays = frozenset() if iso else frozenset({(peer, "C"), ("C", peer)})
        want = NetworkWant(key, uuid, (PortWant(f"t:{key}", peer, 101),), forward=relays)
        links = {peer: LinkView(peer, here, there, enabled=True)}
        return build(PREFIX, 4789, [want], links, dp.kinds([uuid]))

    got_a = desired(a, "e1", NET1_A, "B", A, B, False)
    got_b = desired(b, "r1", NET1_B, "A", B, A, True)
    assert got_a.blocked == {} and got_b.blocked == {}
    assert got_a.state.attachments == {NET1_A: Attachment(NET1_A, "icbe1")}
    for dp, got in ((a, got_a), (b, got_b)):
        apply(dp, got.state)
        assert_converged(dp, got.state)
    assert lab.ping("B", 1, "10.1.0.1")
    # something that is not a Neutron network id blocks its tunnels, as a missing interface
    missing = desired(a, "e2", "net-nowhere", "B", A, B, False)
    assert missing.blocked == {"t:e2": "local interface net-nowhere does not exist"}
    # a network with no port on this host yet (no local VLAN) still gets its tunnels
    idle = "6e3f1a00-0000-4000-8000-000000000fff"
    assert a.interface_kind(idle) == "other"
    got_idle = desired(a, "e3", idle, "B", A, B, False)
    assert got_idle.blocked == {} and "icv101" in got_idle.state.vxlans
