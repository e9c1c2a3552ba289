"""The Linux data plane against the real kernel, each test in network namespaces of its own.

Needs root. Nothing here touches the host's namespace: every interface lives in a namespace of
the `namespaces` fixture (`ictest-<role>-<uuid8>`), deleted after the test even when it fails.
Traffic stays between namespaces the test made (underlay 198.18.0.0/15, tenant 10.10.0.0/24)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import uuid

import pytest

from intercloud.domain.hoststate import Attachment, Bridge, HostState, Patch, Vxlan
from intercloud.domain.plan import Step, plan
from intercloud.drivers.dataplane.linux import BATCH_MIN_STEPS, LinuxDataplane, ipbatch
from intercloud.errors import DriverError

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

P = "ic"
VX100 = Vxlan("icv100", 100, "198.18.0.1", "198.18.0.2", "icbe1", isolated=True)
VX200 = Vxlan("icv200", 200, "198.18.0.1", "198.18.0.3", "icbe2", port=4790, mtu=1400)
PATCH = Patch("icpe1", "icqe1", "icbe1", "opbr")
ATT = Attachment("opv0", "icbe2")


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def driver(namespaces):
    """A factory of drivers, each in a new namespace: (driver, namespace). Closed first."""
    opened: list[LinuxDataplane] = []

    def make(role: str = "gw") -> tuple[LinuxDataplane, str]:
        ns = namespaces(role)
        dp = LinuxDataplane(P, netns=ns)
        opened.append(dp)
        return dp, ns

    try:
        yield make
    finally:
        for dp in opened:
            dp.close()


@pytest.fixture
def host(driver):
    """One namespace with an operator bridge `opbr` and an operator veth `opv0`/`opv1`."""
    dp, ns = driver()
    sh("ip", "-n", ns, "link", "add", "opbr", "type", "bridge")
    sh("ip", "-n", ns, "link", "add", "opv0", "type", "veth", "peer", "name", "opv1")
    return dp, ns


def desired() -> HostState:
    s = HostState()
    for obj in (Bridge("icbe1"), Bridge("icbe2", 1400), VX100, VX200, PATCH, ATT):
        s.add(obj)
    return s


def converge(dp: LinuxDataplane, want: HostState) -> list[str]:
    """As the reconciler does: one plan from a fresh observe, applied trusting it."""
    steps = plan(want, dp.observe(["opv0"]))
    with dp.applying():
        for step in steps:
            getattr(dp, step.verb)(step.obj)
    return [s.describe() for s in steps]


def indexes(ns: str) -> list[str]:
    """`index: name` of every interface: what changes when one is re-created (its operstate
    may still move on its own after a port came up)."""
    lines = sh("ip", "-n", ns, "-o", "link", "show").splitlines()
    return [":".join(line.split(":", 2)[:2]) for line in lines]


def test_ensure_then_observe_equals_desired(host):
    dp, ns = host
    converge(dp, desired())
    assert dp.observe(["opv0"]).state == desired()
    assert converge(dp, desired()) == []
    details = sh("ip", "-n", ns, "-d", "link", "show", "icv100")
    assert "remote 198.18.0.2" in details and "isolated on" in details
    assert "state UP" in sh("ip", "-n", ns, "link", "show", "icbe1")
    br = sh("ip", "-n", ns, "-d", "link", "show", "icbe1")
    assert "stp_state 0" in br and "forward_delay 0" in br
    assert "master opbr" in sh("ip", "-n", ns, "link", "show", "icqe1")
    assert "master icbe2" in sh("ip", "-n", ns, "link", "show", "opv0")
    assert [dp.interface_kind(n) for n in ("icbe1", "icv100", "icpe1", "lo", "nope")] == [
        "bridge",
        "vxlan",
        "veth",
        "other",
        None,
    ]
    dp.detach("opv0")
    dp.detach("opv0")  # already free: no error
    assert "master" not in sh("ip", "-n", ns, "link", "show", "opv0")
    assert dp.observe(["opv0"]).state.attachments == {}


def test_ensure_patch_replaces_leftovers(host):
    dp, ns = host
    dp.ensure_bridge(Bridge("icbe1"))
    sh("ip", "-n", ns, "link", "add", "icqe1", "type", "bridge")  # an end in the way
    dp.ensure_patch(PATCH)
    assert dp.observe().state.patches == {"icpe1": PATCH}
    sh("ip", "-n", ns, "link", "del", "icpe1")
    sh("ip", "-n", ns, "link", "add", "icpe1", "type", "veth", "peer", "name", "other1")
    dp.ensure_patch(PATCH)  # a pair with the wrong peer
    assert dp.observe().state.patches == {"icpe1": PATCH}
    assert dp.interface_kind("other1") is None


def test_ensure_twice_is_a_no_op(host):
    dp, ns = host
    converge(dp, desired())
    before = indexes(ns)
    for obj in (Bridge("icbe1"), Bridge("icbe2", 1400), VX100, VX200, PATCH):
        getattr(dp, "ensure_" + type(obj).__name__.lower())(obj)
    dp.attach(ATT)
    assert indexes(ns) == before
    assert plan(desired(), dp.observe(["opv0"])) == []


def test_changing_the_remote_replaces_the_vxlan(host):
    dp, ns = host
    converge(dp, desired())
    want = desired()
    want.add(dataclasses.replace(VX100, remote="198.18.0.9"))
    assert converge(dp, want) == ["remove_link icv100", "ensure_vxlan icv100"]
    assert "remote 198.18.0.9" in sh("ip", "-n", ns, "-d", "link", "show", "icv100")
    # ensure_vxlan alone also replaces a device whose attributes differ
    dp.ensure_vxlan(dataclasses.replace(VX100, vni=300))
    assert dp.observe().state.vxlans["icv100"] == dataclasses.replace(VX100, vni=300)


def test_mtu_observation_rule(host):
    dp, ns = host
    dp.ensure_bridge(Bridge("icbe1", 9000))
    assert dp.observe().state.bridges["icbe1"] == Bridge("icbe1", 9000)
    sh("ip", "-n", ns, "link", "set", "icbe1", "mtu", "1300")  # drift is seen...
    assert dp.observe().state.bridges["icbe1"] == Bridge("icbe1", 1300)
    dp.ensure_bridge(Bridge("icbe1", 9000))  # ...and repaired
    assert dp.observe().state.bridges["icbe1"] == Bridge("icbe1", 9000)
    dp.ensure_bridge(Bridge("icbe1"))  # None: our mark goes, the MTU stays
    assert dp.observe().state.bridges["icbe1"] == Bridge("icbe1")
    assert "mtu 9000" in sh("ip", "-n", ns, "link", "show", "icbe1")
    dp.ensure_vxlan(VX100)  # mtu=None: the device keeps the kernel's default, reported None
    want = HostState(bridges={"icbe1": Bridge("icbe1")}, vxlans={"icv100": VX100})
    assert plan(want, dp.observe()) == []
    dp.ensure_vxlan(dataclasses.replace(VX100, mtu=1380))  # set in place, same device
    assert dp.observe().state.vxlans["icv100"].mtu == 1380


def test_cleanup_removes_ours_and_keeps_foreign(host):
    dp, ns = host
    converge(dp, desired())
    dp.cleanup()
    assert dp.observe(["opv0"]).state == HostState()
    names = sh("ip", "-n", ns, "-o", "link", "show")
    assert "opbr" in names and "opv0" in names and "opv1" in names
    assert " ic" not in names
    assert "master" not in sh("ip", "-n", ns, "link", "show", "opv0")


def test_errors_name_the_interface(host, driver):
    dp, ns = host
    with pytest.raises(DriverError, match="cannot enslave vxlan icv100 to bridge icbe1"):
        dp.ensure_vxlan(VX100)
    dp.ensure_bridge(Bridge("icbe1"))
    with pytest.raises(DriverError, match="cannot patch icpe1 into nobr: no such interface"):
        dp.ensure_patch(dataclasses.replace(PATCH, peer_master="nobr"))
    with pytest.raises(DriverError, match="cannot attach eth9 to icbe1: no such interface"):
        dp.attach(Attachment("eth9", "icbe1"))
    with pytest.raises(DriverError, match="cannot enslave opbr to icbe1"):
        dp.attach(Attachment("opbr", "icbe1"))  # a bridge cannot be a bridge port
    dp.ensure_vxlan(VX100)
    with pytest.raises(DriverError, match="cannot create vxlan icv9: File exists"):
        dp.ensure_vxlan(dataclasses.replace(VX100, name="icv9", remote="198.18.0.7"))
    dp.detach("nothing")
    dp.remove_link("nothing")
    with pytest.raises(DriverError, match="does not exist"):
        LinuxDataplane(P, netns=f"ictest-dp-missing-{uuid.uuid4().hex[:8]}")


def _underlay(a: str, b: str) -> None:
    sh("ip", "-n", a, "link", "add", "ul0", "type", "veth", "peer", "name", "ul0", "netns", b)
    for ns, addr in ((a, "198.18.0.1/24"), (b, "198.18.0.2/24")):
        sh("ip", "-n", ns, "addr", "add", addr, "dev", "ul0")
        sh("ip", "-n", ns, "link", "set", "ul0", "up")


def _tenant(gw: str, vm: str, addr: str) -> None:
    """An operator bridge `tenant` in the gateway and a VM namespace plugged into it."""
    sh("ip", "-n", gw, "link", "add", "tenant", "type", "bridge")
    sh("ip", "-n", gw, "link", "set", "tenant", "up")
    sh("ip", "-n", vm, "link", "add", "eth0", "type", "veth", "peer", "name", "tap0", "netns", gw)
    sh("ip", "-n", gw, "link", "set", "tap0", "master", "tenant", "up")
    sh("ip", "-n", vm, "addr", "add", addr, "dev", "eth0")
    sh("ip", "-n", vm, "link", "set", "eth0", "up")


def test_vms_in_two_gateways_ping_over_vxlan(driver, namespaces):
    dp_a, gw_a = driver("gwA")
    dp_b, gw_b = driver("gwB")
    vm_a, vm_b = namespaces("vmA"), namespaces("vmB")
    _underlay(gw_a, gw_b)
    _tenant(gw_a, vm_a, "10.10.0.1/24")
    _tenant(gw_b, vm_b, "10.10.0.2/24")
    for dp, local, remote in (
        (dp_a, "198.18.0.1", "198.18.0.2"),
        (dp_b, "198.18.0.2", "198.18.0.1"),
    ):
        want = HostState()
        want.add(Bridge("icbe1"))
        want.add(Vxlan("icv100", 100, local, remote, "icbe1"))
        want.add(Patch("icpe1", "icqe1", "icbe1", "tenant"))
        converge(dp, want)
        assert plan(want, dp.observe()) == []
    ping = subprocess.run(
        ["ip", "netns", "exec", vm_a, "ping", "-c", "3", "-W", "1", "10.10.0.2"],
        capture_output=True,
        text=True,
    )
    assert ping.returncode == 0, ping.stdout + ping.stderr
    dp_a.remove_link("icv100")  # the tunnel was the only way across
    ping = subprocess.run(
        ["ip", "netns", "exec", vm_a, "ping", "-c", "1", "-W", "1", "10.10.0.2"],
        capture_output=True,
        text=True,
    )
    assert ping.returncode != 0


def _tunnel(i: int) -> Vxlan:
    """Tunnel port i of the batch tests into bridge icbn<i>: every other one with an MTU, every
    third isolated, the sixth rate-limited."""
    return Vxlan(
        f"icv{1000 + i}",
        1000 + i,
        "198.18.0.1",
        f"198.18.0.{2 + i % 3}",
        f"icbn{i}",
        mtu=1400 if i % 2 else None,
        isolated=i % 3 == 0,
        rate_mbit=50.0 if i == 5 else None,
    )


def test_many_fresh_devices_are_made_in_one_batch_and_checked(host, monkeypatch):
    """Past BATCH_MIN_STEPS fresh devices, apply() makes them with one `ip -batch`, then each
    step checks its device the ordinary way: a line the kernel refuses (a VNI already taken)
    fails only its own step, with the same message the ordinary path gives."""
    dp, ns = host
    batches: list[int] = []
    real_run = ipbatch.run

    def counting_run(lines: list[str], netns: str | None, timeout: float = 300.0) -> str:
        batches.append(len(lines))
        return real_run(lines, netns, timeout)

    monkeypatch.setattr(ipbatch, "run", counting_run)
    n = BATCH_MIN_STEPS
    want = HostState()
    for i in range(n):
        want.add(Bridge(f"icbn{i}", 1400 if i % 2 else None))
        want.add(_tunnel(i))
        want.add(Patch(f"icpn{i}", f"icqn{i}", f"icbn{i}", "opbr"))
    want.add(Attachment("opv0", "icbn0"))
    clash = Vxlan("icv999", 1003, "198.18.0.1", "198.18.0.9", "icbn1")  # icv1003's VNI
    steps = plan(want, dp.observe(["opv0"]))
    steps.append(Step("ensure_vxlan", clash))
    with dp.applying():
        done = list(dp.apply(steps))

    # two ip processes for all fresh devices: made and configured, then up (IPv6 off between);
    # the clash's line failed, so every step was checked against a dump
    assert len(batches) == 2 and sum(batches) > 3 * n
    assert all(_ipv6_off(ns, f"icv{1000 + i}") for i in range(n))
    failed = {s.describe(): exc.message for s, exc in done if exc is not None}
    assert failed == {"ensure_vxlan icv999": "cannot create vxlan icv999: File exists"}
    assert [s for s, _ in done] == steps  # every step answered, in order
    assert dp.observe(["opv0"]).state == want  # rate, MTU marks, isolation, attachment included
    assert plan(want, dp.observe(["opv0"])) == []
    assert ",UP," in sh("ip", "-n", ns, "link", "show", "icv1005")  # up once limited
    assert "tbf" in sh("tc", "-n", ns, "qdisc", "show", "dev", "icv1005")
    assert "master opbr state UP" in sh("ip", "-n", ns, "link", "show", "icqn7")


def test_a_batch_ip_did_without_complaint_is_not_checked_against_a_dump(host, monkeypatch):
    """Tunnel ports into bridges that exist (a pass that rebuilds them): ip did every line, so
    no interface is dumped again. The steps are done as their lines did them, the rate-limited
    port's by its ordinary step (asked by name, its qdisc, then up), and the host is as wanted
    (rate limit, MTU marks, isolation)."""
    dp, ns = host
    n = BATCH_MIN_STEPS + 2
    want = HostState()
    for i in range(n):
        want.add(Bridge(f"icbn{i}"))
    with dp.applying():
        assert all(exc is None for _, exc in dp.apply(plan(want, dp.observe())))
    for i in range(n):
        want.add(_tunnel(i))
    dumps: list[str | None] = []
    real_links = type(dp._nl).links

    def counting_links(nl, kind=None, others=None):
        dumps.append(kind)
        return real_links(nl, kind, others)

    monkeypatch.setattr(type(dp._nl), "links", counting_links)
    steps = plan(want, dp.observe())
    assert [s.verb for s in steps] == ["ensure_vxlan"] * n
    dumps.clear()
    with dp.applying():
        done = list(dp.apply(steps))
    assert [exc for _, exc in done] == [None] * n
    assert [s for s, _ in done] == steps  # in order
    assert dumps == []  # no dump after the batch
    assert plan(want, dp.observe()) == []  # rate, MTU marks and isolation included
    assert "tbf" in sh("tc", "-n", ns, "qdisc", "show", "dev", "icv1005")
    assert ",UP," in sh("ip", "-n", ns, "link", "show", "icv1005")


def _ipv6_off(ns: str, name: str) -> bool:
    """IPv6 disabled on `name` and no IPv6 address on it."""
    knob = sh("ip", "netns", "exec", ns, "cat", f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6")
    return knob.strip() == "1" and "inet6" not in sh("ip", "-n", ns, "addr", "show", "dev", name)


def test_tunnel_ports_come_up_without_ipv6(host):
    """A tunnel port is made with IPv6 off before it comes up (ipv6.py: no multicast route per
    port, nothing of the host's IPv6 into the tenants' segment); the bridges keep theirs."""
    dp, ns = host
    converge(dp, desired())
    assert ",UP," in sh("ip", "-n", ns, "link", "show", VX100.name)
    assert _ipv6_off(ns, VX100.name) and _ipv6_off(ns, VX200.name)
    assert not _ipv6_off(ns, "icbe1")
    routes = sh("ip", "-n", ns, "-6", "route", "show", "table", "local")
    assert VX100.name not in routes and VX200.name not in routes


def test_many_tunnels_and_patches_are_deleted_together(host, monkeypatch):
    """Past BATCH_MIN_STEPS removals, the tunnels and patches go in one request (a device group
    of their own, then that group deleted); the operator's devices stay."""
    dp, ns = host
    n = BATCH_MIN_STEPS
    want = HostState()
    for i in range(n):
        want.add(Bridge(f"icbd{i}"))
        want.add(Vxlan(f"icv{2000 + i}", 2000 + i, "198.18.0.1", "198.18.0.2", f"icbd{i}"))
    want.add(Patch("icpd0", "icqd0", "icbd0", "opbr"))
    sh("ip", "-n", ns, "link", "set", "opv0", "group", "7")  # an operator's group: untouched
    converge(dp, want)
    keep = HostState()
    keep.add(Bridge("icbd0"))
    batches: list[list[str]] = []
    real_run = ipbatch.run

    def recording_run(lines: list[str], netns: str | None, timeout: float = 300.0) -> str:
        batches.append(lines)
        return real_run(lines, netns, timeout)

    monkeypatch.setattr(ipbatch, "run", recording_run)
    steps = plan(keep, dp.observe(["opv0"]))
    with dp.applying():
        done = list(dp.apply(steps))
    assert [exc for _, exc in done if exc is not None] == []
    assert len(batches) == 1 and batches[0][-1].startswith("link del group ")
    assert len(batches[0]) == n + 2  # every tunnel and the patch put in the group, then deleted
    assert dp.observe(["opv0"]).state == keep
    links = sh("ip", "-n", ns, "-o", "link", "show")
    assert "icv20" not in links and "icqd0" not in links
    assert "opv0" in links and "opbr" in links


def test_a_value_with_ip_syntax_never_reaches_the_batch(host, monkeypatch):
    """Issue 13, finding 1: a tunnel endpoint carrying a newline and `ip` commands, among
    enough fresh devices to go through `ip -batch`: its step fails with its own error, no line
    of it is written, no namespace appears; every other device is made."""
    dp, ns = host
    pwn = f"ictest-pwn-{uuid.uuid4().hex[:8]}"
    written: list[str] = []
    real_run = ipbatch.run

    def recording_run(lines: list[str], netns: str | None, timeout: float = 300.0) -> str:
        written.extend(lines)
        return real_run(lines, netns, timeout)

    monkeypatch.setattr(ipbatch, "run", recording_run)
    want = HostState()
    for i in range(BATCH_MIN_STEPS):
        want.add(Bridge(f"icbn{i}"))
        want.add(Vxlan(f"icv{1000 + i}", 1000 + i, "198.18.0.1", "198.18.0.2", f"icbn{i}"))
    hostile = [
        Vxlan("icv990", 990, "198.18.0.1", f"198.18.0.9\nnetns add {pwn}", "icbn0"),
        Vxlan("icv991", 991, f"fe80::1%x\nnetns add {pwn}", "fe80::2", "icbn1"),
        Vxlan("icv992", 992, "198.18.0.1", "0.0.0.0/0", "icbn2"),
    ]
    steps = plan(want, dp.observe(["opv0"])) + [Step("ensure_vxlan", v) for v in hostile]
    with dp.applying():
        done = list(dp.apply(steps))

    failed = {s.describe(): exc.message for s, exc in done if exc is not None}
    assert set(failed) == {f"ensure_vxlan {v.name}" for v in hostile}, failed
    assert all("not a plain IP address" in why for why in failed.values()), failed
    assert written and not [line for line in written if pwn in line or "0.0.0.0/0" in line]
    assert pwn not in sh("ip", "netns", "list")
    assert plan(want, dp.observe(["opv0"])) == []  # everything else was made


def _learned(ns: str, port: str) -> set[str]:
    """The MACs the bridge learned (dynamic entries) on `port`."""
    lines = sh("bridge", "-n", ns, "fdb", "show", "dev", port).splitlines()
    return {
        ln.split()[0]
        for ln in lines
        if "master" in ln and "permanent" not in ln and "static" not in ln
    }


def _learning_host(host) -> tuple[LinuxDataplane, str, dict[str, str]]:
    """Our bridges and tunnels, an operator bridge with a port and a port of an odd name in
    ours, each port with one learned (dynamic) entry: port -> its MAC."""
    dp, ns = host
    want = desired()
    want.add(Vxlan("icv300", 300, "198.18.0.1", "198.18.0.4", "icbe1"))
    converge(dp, want)
    sh("ip", "-n", ns, "link", "add", "op,v", "type", "veth", "peer", "name", "op,w")
    for port, master in (("opv1", "opbr"), ("op,v", "icbe2")):
        sh("ip", "-n", ns, "link", "set", port, "master", master, "up")
        # only our entries: what the veth's own IPv6 sends is not learned meanwhile
        sh("ip", "-n", ns, "link", "set", port, "type", "bridge_slave", "learning", "off")
    for name in ("opv0", "op,w", "opbr"):  # a port learns only with carrier, in a bridge up
        sh("ip", "-n", ns, "link", "set", name, "up")
    macs = {
        "icv100": "02:00:00:00:01:00", "icv200": "02:00:00:00:02:00",
        "icv300": "02:00:00:00:03:00", "opv1": "02:00:00:00:04:00",
        "op,v": "02:00:00:00:05:00",
    }  # fmt: skip
    for port, mac in macs.items():  # as learned: dynamic entries of the bridge
        sh("bridge", "-n", ns, "fdb", "add", mac, "dev", port, "master", "dynamic")
    sh("bridge", "-n", ns, "fdb", "add", "02:00:00:00:01:99", "dev", "icv100", "master", "static")
    assert all(_learned(ns, port) == {mac} for port, mac in macs.items())
    sh("ip", "-n", ns, "link", "add", "opd", "type", "veth", "peer", "name", "ope")  # no bridge
    return dp, ns, macs


def _batches(monkeypatch, module: str) -> list[list[str]]:
    """Every batch of lines ipbatch.`module` is given from now on (it still runs them)."""
    batches: list[list[str]] = []
    real = getattr(ipbatch, module)

    def recorded(lines, netns, timeout=300.0):
        batches.append(lines)
        return real(lines, netns, timeout)

    monkeypatch.setattr(ipbatch, module, recorded)
    return batches


FLUSHED = ["icv100", "icv200", "opbr", "op,v", "icv404", "opd", "op,w"]


def test_learned_macs_are_flushed_in_one_batch(host, monkeypatch):
    """flush_learned: tunnel ports and an operator bridge (all its ports) forget what they
    learned, with one `bridge -batch` for all (a bulk delete of the bridge's learned
    entries); a port of an odd name goes the ordinary way; a name that is gone or no bridge's
    port is passed over; nothing else is flushed, and no static entry."""
    dp, ns, macs = _learning_host(host)
    batches, ip_batches = _batches(monkeypatch, "run_bridge"), _batches(monkeypatch, "run")

    dp.flush_learned(FLUSHED)

    assert (
        ip_batches == []
        and len(batches) == 1
        and sorted(batches[0])
        == [
            "fdb flush dev icv100 master dynamic",
            "fdb flush dev icv200 master dynamic",
            "fdb flush dev opbr dynamic",
        ]
    )
    for port in ("icv100", "icv200", "opv1", "op,v"):
        assert _learned(ns, port) == set(), port
    assert "02:00:00:00:01:99" in sh("bridge", "-n", ns, "fdb", "show", "dev", "icv100")
    assert _learned(ns, "icv300") == {macs["icv300"]}  # not asked: kept


def test_without_bulk_flush_the_learned_macs_are_flushed_by_ip(host, monkeypatch):
    """Where `bridge fdb flush` is missing (iproute2 before 6.0; what it then says is
    simulated), the same ports forget the same entries through one `ip -batch`."""
    dp, ns, macs = _learning_host(host)
    ip_batches = _batches(monkeypatch, "run")
    said, real_run = 'Command "flush" is unknown, try "bridge fdb help".', subprocess.run

    def old_iproute2(argv, **kw):
        if "bridge" in argv:
            return subprocess.CompletedProcess(argv, 255, "", said)
        return real_run(argv, **kw)

    monkeypatch.setattr(ipbatch.subprocess, "run", old_iproute2)

    dp.flush_learned(FLUSHED)
    monkeypatch.undo()  # `bridge` reads the entries again

    assert len(ip_batches) == 1 and sorted(ip_batches[0]) == [
        "link set dev icv100 type bridge_slave fdb_flush",
        "link set dev icv200 type bridge_slave fdb_flush",
        "link set dev opbr type bridge fdb_flush",
    ]
    for port in ("icv200", "opv1", "op,v"):
        assert _learned(ns, port) == set(), port
    assert _learned(ns, "icv300") == {macs["icv300"]}
