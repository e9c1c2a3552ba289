"""The OVS data plane with kernel tunnels on real Open vSwitch (userspace datapath) and real
kernel VXLAN, one OVS per gateway namespace: br-cloud patched to br-int, each network leaving
OVS by its own veth into a Linux bridge with kernel VXLAN tunnel ports.

Gateways A, B, C on one underlay switch (198.18.0.0/24 on each gateway's ul0, a kernel
interface: the tunnels cross the kernel's IP stack). br-int is played as the Neutron OVS agent
runs it, with DIFFERENT local VLANs on each side. Network 1 spans A (origin), B and C; network
2 only A and B."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from intercloud.domain.hoststate import HostState
from intercloud.drivers.dataplane.linux import LinuxDataplane
from intercloud.drivers.dataplane.ovs import OvsKernelDataplane
from intercloud.errors import DriverError
from intercloud.lab import namespaces as hosts
from intercloud.lab import nsexec
from intercloud.lab import ovs_instance as labovs
from tests.integration import test_ovs_dataplane as base
from tests.integration.helpers import capture
from tests.waiting import wait_for

PREFIX = base.PREFIX
A, B, C = base.A, base.B, base.C
NET1_A, NET1_B, NET1_C, NET2_A, NET2_B = (
    base.NET1_A,
    base.NET1_B,
    base.NET1_C,
    base.NET2_A,
    base.NET2_B,
)
net, apply, assert_converged = base.net, base.apply, base.assert_converged


class Lab(base.Lab):
    def up(self) -> None:
        sw = self.ns("ul")
        self.namespaces.add(sw)
        hosts.add_bridge(sw, "sw")
        for gw, addr in base.UNDERLAY.items():
            g = self.ns(gw)
            self.namespaces.add(g)
            self.namespaces.veth(g, "ul0", sw, f"to-{gw}")
            hosts.set_up(sw, f"to-{gw}", master="sw")
            hosts.set_up(g, "ul0")
            hosts.add_address(g, "ul0", f"{addr}/24")
            self.ovs[gw] = labovs.start_ovs(g)
            labovs.add_bridge(self.ovs[gw], "br-int")
        for (gw, n), (tag, uuid, ip) in base.VMS.items():
            self.namespaces.adopt(self.vm(gw, n))
            labovs.add_vm(self.ovs[gw], self.vm(gw, n), f"vm{n}", tag, uuid, f"{ip}/24", mtu=1450)


@pytest.fixture(scope="module")
def lab():
    yield from base.running(Lab())


def make_driver(lab, gw: str) -> OvsKernelDataplane:
    inst = lab.ovs[gw]
    linux = LinuxDataplane(PREFIX, netns=lab.ns(gw))
    return OvsKernelDataplane(PREFIX, inst.db, inst.rundir, linux=linux)


@pytest.fixture
def drivers(lab):
    yield from base.cleaned(lambda gw: make_driver(lab, gw))


def three_gateways(drivers):
    """Network 1 at A (origin, relays: not isolated) to B and C; network 2 A<->B."""
    a, b, c = drivers("A"), drivers("B"), drivers("C")
    want_a = net("icbe1", NET1_A, [("icv101", 101, A, B), ("icv102", 102, A, C)], False)
    net("icbe2", NET2_A, [("icv201", 201, A, B)], True, want_a)
    want_b = net("icbr1", NET1_B, [("icv101", 101, B, A)], True)
    net("icbr2", NET2_B, [("icv201", 201, B, A)], True, want_b)
    want_c = net("icbr1", NET1_C, [("icv102", 102, C, A)], True)
    for dp, want in ((a, want_a), (b, want_b), (c, want_c)):
        apply(dp, want)
        assert_converged(dp, want)
    return (a, want_a), (b, want_b), (c, want_c)


def test_vlan_translation_relay_and_flooding_scope(lab, drivers):
    (a, _), _, _ = three_gateways(drivers)
    assert lab.ping("A", 1, "10.1.0.2") and lab.ping("A", 1, "10.1.0.3")
    assert lab.ping("A", 2, "10.2.0.2")
    assert lab.ping("B", 1, "10.1.0.3"), "no relay B->C via the origin A"
    assert lab.no_ping("A", 2, "10.1.0.2")  # networks stay apart
    # the tunnel ports are kernel VXLAN devices (so the probes and IPsec see them)
    out = subprocess.run(
        nsexec.exec_argv(lab.ns("A"), ["ip", "-d", "-o", "link", "show", "icv101"]),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "vxlan id 101" in out, out
    vni2 = "udp dst port 4789 and ( udp[12:4] >> 8 ) = 201"
    with capture(lab.ns("C"), "ul0", vni2) as at_c, capture(lab.ns("B"), "ul0", vni2) as at_b:
        broadcast = ["ping", "-b", "-c", "3", "-i", "0.2", "-w", "1", "10.2.0.255"]
        subprocess.run(nsexec.exec_argv(lab.vm("A", 2), broadcast), capture_output=True)
        assert lab.ping("A", 2, "10.2.0.2")
    assert at_b.lines, "B saw no frame of network 2: the capture proves nothing"
    assert at_c.lines == [], f"C got frames of a network not expanded to it: {at_c.lines}"
    # br-cloud holds our patch and one port per network (no tunnel port of OVS's own)
    ports = sorted(lab.ovs["A"].vsctl("list-ports", "br-cloud").split())
    assert ports == ["ic-to-int", "icqe1", "icqe2"], ports


def test_repairs_drift_and_an_ovs_restart(lab, drivers):
    _, (b, want_b), _ = three_gateways(drivers)
    inst = lab.ovs["B"]
    assert lab.ping("B", 1, "10.1.0.1")
    # someone empties br-cloud's flow table: both attachments are redone
    inst.ofctl("br-cloud", "del-flows", "-O", "OpenFlow13")
    # the datapath's cached flows go at OVS's next revalidation (a CI run once pinged first)
    wait_for(lambda: lab.no_ping("B", 1, "10.1.0.1"), 10, 0.5, "traffic to stop")
    assert apply(b, want_b) == [f"attach {NET1_B}->icbr1", f"attach {NET2_B}->icbr2"]
    assert_converged(b, want_b)
    assert lab.ping("B", 1, "10.1.0.1")
    # someone deletes a network's veth: it is made again
    hosts.ip("link", "del", "icpr1", ns=lab.ns("B"))
    assert apply(b, want_b) == [f"attach {NET1_B}->icbr1"]
    assert_converged(b, want_b)
    assert lab.ping("B", 1, "10.1.0.1")
    # ovs-vswitchd restarts (its flows are gone with it): once it is back, the plan repairs
    pid = int((inst.dir / "ovs-vswitchd.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10, what="vswitchd to die")
    subprocess.run(
        nsexec.exec_argv(
            inst.ns,
            [
                "env",
                f"OVS_RUNDIR={inst.dir}",
                "ovs-vswitchd",
                inst.db,
                f"--pidfile={inst.dir / 'ovs-vswitchd.pid'}",
                f"--unixctl={inst.dir / 'ovs-vswitchd.ctl'}",
                f"--log-file={inst.dir / 'ovs-vswitchd.log'}",
                "--detach",
                "--no-chdir",
            ],
        ),
        check=True,
    )
    wait_for(lambda: inst.appctl("version", check=False), 15, what="vswitchd back")
    time.sleep(1)
    apply(b, want_b)
    assert_converged(b, want_b)
    assert lab.ping("B", 1, "10.1.0.1") and lab.ping("B", 2, "10.2.0.1")
    # the whole host rebuilt from nothing (cleanup, then the same desired state)
    b.cleanup()
    assert b.observe().state == HostState()
    apply(b, want_b)
    assert_converged(b, want_b)
    assert lab.ping("B", 1, "10.1.0.1")


def test_mss_clamp_rate_limit_and_refusals(lab, drivers):
    (a, want_a), _, _ = three_gateways(drivers)
    import dataclasses

    vx = want_a.vxlans["icv101"]
    want_a.vxlans["icv101"] = dataclasses.replace(vx, mss=1300, rate_mbit=20)
    steps = apply(a, want_a)
    assert "ensure_mss_clamp icv101=1300" in steps, steps
    assert_converged(a, want_a)
    assert a.observe_mss_clamp() == {"icv101": 1300}
    assert lab.ping("A", 1, "10.1.0.2")
    with pytest.raises(DriverError, match="not a Neutron network id"):
        from intercloud.domain.hoststate import Attachment

        a.attach(Attachment("no-such-net", "icbe1"))
    assert a.interface_kind(NET1_A) == "other"


def test_nothing_left_behind(lab):
    """Runs last in this module: every driver cleaned up."""
    for gw in "ABC":
        assert lab.ovs[gw].vsctl("list-br").split() == ["br-int"]
        out = subprocess.run(
            nsexec.exec_argv(lab.ns(gw), ["ip", "-o", "link"]), capture_output=True, text=True
        ).stdout
        assert not [ln for ln in out.splitlines() if ": ic" in ln], out
