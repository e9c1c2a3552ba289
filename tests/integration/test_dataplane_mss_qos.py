"""MSS clamping (nftables, bridge family) and per-expansion rate limits (tc tbf) of the Linux data
plane, measured with real TCP between VMs over VXLAN.

Needs root. Every interface, nft table and qdisc lives in namespaces of the `namespaces`
fixture (`ictest-<role>-<uuid8>`), deleted after the test even when it fails; traffic stays
between them (underlay 198.18.0.0/24, tenants 10.10.<project>.0/24)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from intercloud.domain.hoststate import Bridge, HostState, Patch, Vxlan
from intercloud.domain.mtu import link_mtu
from intercloud.domain.plan import plan
from intercloud.drivers.dataplane.linux import LinuxDataplane
from tests.integration.helpers import capture
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

P = "ic"
GW = {"A": ("198.18.0.1", "198.18.0.2"), "B": ("198.18.0.2", "198.18.0.1")}  # local, remote
RATE = 50.0


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def nsx(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *args]


@pytest.fixture
def world(namespaces):
    """Namespaces, drivers and processes of one test, all gone at teardown (the namespaces
    last: the fixture `namespaces` deletes them)."""
    drivers: list[LinuxDataplane] = []
    procs: list[subprocess.Popen] = []

    class World:
        def __init__(self) -> None:
            self.ns: dict[str, str] = {}
            self.dp: dict[str, LinuxDataplane] = {}

        def make(self, role: str) -> str:
            name = namespaces(role)
            self.ns[role] = name
            return name

        def driver(self, role: str) -> LinuxDataplane:
            dp = LinuxDataplane(P, netns=self.make(role))
            drivers.append(dp)
            self.dp[role] = dp
            return dp

        def popen(self, argv: list[str], **kw) -> subprocess.Popen:
            proc = subprocess.Popen(argv, text=True, **kw)
            procs.append(proc)
            return proc

    try:
        yield World()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        for dp in drivers:
            dp.close()


def build(w, projects: tuple[int, ...], underlay_mtu: int = 1500) -> None:
    """Gateways A and B joined by a veth underlay; per project a tenant bridge with one VM on
    each side (vmA<p>: 10.10.<p>.1, vmB<p>: 10.10.<p>.2)."""
    w.driver("gwA"), w.driver("gwB")
    gw = {"A": w.ns["gwA"], "B": w.ns["gwB"]}
    link = ("link", "add", "ul0", "type", "veth", "peer", "name", "ul0", "netns", gw["B"])
    sh("ip", "-n", gw["A"], *link)
    for side in "AB":
        sh("ip", "-n", gw[side], "link", "set", "ul0", "mtu", str(underlay_mtu), "up")
        sh("ip", "-n", gw[side], "addr", "add", GW[side][0] + "/24", "dev", "ul0")
        for p in projects:
            vm = w.make(f"vm{side}{p}")
            sh("ip", "-n", gw[side], "link", "add", f"tenant{p}", "type", "bridge")
            sh("ip", "-n", gw[side], "link", "set", f"tenant{p}", "up")
            veth = ("link", "add", "eth0", "type", "veth", "peer", "name", f"tap{p}")
            sh("ip", "-n", vm, *veth, "netns", gw[side])
            sh("ip", "-n", gw[side], "link", "set", f"tap{p}", "master", f"tenant{p}", "up")
            addr = f"10.10.{p}.{1 if side == 'A' else 2}/24"
            sh("ip", "-n", vm, "addr", "add", addr, "dev", "eth0")
            sh("ip", "-n", vm, "link", "set", "eth0", "up")


def want(side: str, projects: dict[int, dict]) -> HostState:
    """Desired state of one gateway: per project a bridge, a tunnel (with `projects[p]` as
    extra Vxlan fields) and a patch into the tenant bridge."""
    local, remote = GW[side]
    s = HostState()
    for p, extra in projects.items():
        s.add(Bridge(f"icb{p}"))
        s.add(Vxlan(f"icv{p}00", p * 100, local, remote, f"icb{p}", **extra))
        s.add(Patch(f"icp{p}", f"icq{p}", f"icb{p}", f"tenant{p}"))
    return s


def converge(dp: LinuxDataplane, desired: HostState) -> list[str]:
    steps = plan(desired, dp.observe())
    for step in steps:
        getattr(dp, step.verb)(step.obj)
    assert plan(desired, dp.observe()) == []
    return [s.describe() for s in steps]


def ping(w, vm: str, addr: str) -> None:
    done = subprocess.run(nsx(w.ns[vm], "ping", "-c", "3", "-i", "0.2", "-W", "2", addr),
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


SERVER = """
import hashlib, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7000)); s.listen(1); print("ready", flush=True)
c, _ = s.accept(); h = hashlib.sha256(); n = 0
while True:
    b = c.recv(1 << 16)
    if not b: break
    h.update(b); n += len(b)
print(n, h.hexdigest(), flush=True)
"""
CLIENT = """
import hashlib, random, socket, sys
data = random.Random(7).randbytes(20 * 1024 * 1024)
c = socket.create_connection((sys.argv[1], 7000), timeout=float(sys.argv[2]))
c.sendall(data); c.close()
print(len(data), hashlib.sha256(data).hexdigest(), flush=True)
"""
SIZE = 20 * 1024 * 1024


def transfer(w, src: str, dst: str, addr: str, timeout: float = 30) -> tuple[str, str] | None:
    """20 MB over TCP from VM `src` to VM `dst`: (what was sent, what arrived) as 'len sha256',
    or None when the sender made no progress for `timeout` seconds."""
    server = w.popen(nsx(w.ns[dst], sys.executable, "-c", SERVER, addr), stdout=subprocess.PIPE)
    assert server.stdout.readline().strip() == "ready"
    argv = nsx(w.ns[src], sys.executable, "-c", CLIENT, addr, str(timeout))
    client = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if client.returncode != 0:
        assert "timed out" in client.stderr, client.stderr
        server.kill()
        return None
    out, _ = server.communicate(timeout=60)
    return client.stdout.strip(), out.strip()


def block_icmp(w, vm: str) -> None:
    """A VM whose firewall drops ICMP errors: it never learns a path MTU (a black hole)."""
    rules = (
        "table inet vmfw {\n chain input {\n type filter hook input priority filter;\n"
        " icmp type destination-unreachable drop\n }\n}\n"
    )
    subprocess.run(nsx(w.ns[vm], "nft", "-f", "-"), input=rules, text=True, check=True)


def test_mss_clamp_avoids_the_pmtu_black_hole(world):
    """Underlay MTU 1400, tunnel port MTU 1500: full-size VM packets do not fit. The kernel's
    VXLAN answers them with ICMP "need to frag (mtu 1350)" to the VM; a VM that drops ICMP
    errors (as many security groups do) stalls. With the clamp no packet is too big."""
    w = world
    build(w, (1,), underlay_mtu=1400)
    mss = link_mtu(1400, encryption="none").mss  # 1400 - 50 - 40 = 1310
    assert mss == 1310
    for side in "AB":
        converge(w.dp[f"gw{side}"], want(side, {1: {"mtu": 1500}}))
    ping(w, "vmA1", "10.10.1.2")
    block_icmp(w, "vmA1")
    assert transfer(w, "vmA1", "vmB1", "10.10.1.2", timeout=4) is None  # the black hole

    for side in "AB":
        steps = converge(w.dp[f"gw{side}"], want(side, {1: {"mtu": 1500, "mss": mss}}))
        assert steps == [f"ensure_mss_clamp icv100={mss}"]
        table = sh(*nsx(w.ns[f"gw{side}"], "nft", "list", "table", "bridge", "intercloud_ic"))
        assert f"maxseg size set {mss}" in table and "maxseg size set 1290" in table
        assert w.dp[f"gw{side}"].observe().state.vxlans["icv100"].mss == mss
    syn = "tcp[tcpflags] & tcp-syn != 0"
    with (
        capture(w.ns["vmB1"], "eth0", syn) as at_b,
        capture(w.ns["vmA1"], "eth0", syn) as at_a,
        capture(w.ns["vmA1"], "eth0", "icmp") as icmp,
    ):
        done = transfer(w, "vmA1", "vmB1", "10.10.1.2")
    assert done is not None, "the transfer stalled despite the clamp"
    sent, got = done
    assert sent == got and sent.startswith(f"{SIZE} "), (sent, got)
    assert icmp.lines == [], icmp.lines  # nothing was too big
    syn_in = [ln for ln in at_b.lines if "> 10.10.1.2.7000" in ln and "[S]" in ln]
    synack_in = [ln for ln in at_a.lines if "10.10.1.2.7000 >" in ln and "[S.]" in ln]
    syn_out = [ln for ln in at_a.lines if "> 10.10.1.2.7000" in ln and "[S]" in ln]
    assert syn_in and all(f"mss {mss}," in ln for ln in syn_in), at_b.lines  # clamped in gwA
    assert synack_in and all(f"mss {mss}," in ln for ln in synack_in), at_a.lines  # in gwB
    assert syn_out and all("mss 1460," in ln for ln in syn_out), at_a.lines  # as the VM sent

    w.dp["gwA"].cleanup()
    assert "intercloud_ic" not in sh(*nsx(w.ns["gwA"], "nft", "list", "tables"))
    assert w.dp["gwA"].observe().state == HostState()


def ifindexes(ns: str) -> list[str]:
    """'<index>: <name>' of every interface: equal lists = no device was re-created."""
    lines = sh("ip", "-n", ns, "-o", "link", "show").splitlines()
    return [":".join(ln.split(":")[:2]).split("@")[0] for ln in lines]


def iperf_server(w, vm: str, addr: str) -> subprocess.Popen:
    argv = nsx(w.ns[vm], "iperf3", "-s", "-1", "-B", addr)
    server = w.popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    listening = ("ss", "-Hltn", "src", f"{addr}:5201")
    wait_for(lambda: sh(*nsx(w.ns[vm], *listening)).strip(), 10, 0.1, "iperf3 to listen")
    return server


def iperf_clients(w, runs: list[tuple[str, str]], seconds: int = 5) -> list[float]:
    """Concurrent iperf3 TCP tests (vm, server address): received Mbit/s of each."""
    for vm, addr in runs:
        iperf_server(w, vm.replace("A", "B"), addr)
    clients = [
        w.popen(
            nsx(w.ns[vm], "iperf3", "-c", addr, "-t", str(seconds), "-J"), stdout=subprocess.PIPE
        )  # fmt: skip
        for vm, addr in runs
    ]
    rates = []
    for client in clients:
        out, _ = client.communicate(timeout=seconds + 30)
        result = json.loads(out)
        assert "error" not in result, result.get("error")
        rates.append(result["end"]["sum_received"]["bits_per_second"] / 1e6)
    return rates


def test_rate_limit_per_expansion(world):
    w = world
    build(w, (1, 2))
    limited = {1: {"rate_mbit": RATE}, 2: {}}
    steps = converge(w.dp["gwA"], want("A", limited))
    assert "ensure_vxlan icv100" in steps
    converge(w.dp["gwB"], want("B", {1: {}, 2: {}}))
    seen = w.dp["gwA"].observe().state.vxlans
    assert seen["icv100"].rate_mbit == RATE and seen["icv200"].rate_mbit is None
    qdisc = sh(*nsx(w.ns["gwA"], "tc", "qdisc", "show", "dev", "icv100"))
    assert "qdisc tbf 1c1: root" in qdisc and "rate 50Mbit" in qdisc, qdisc
    ping(w, "vmA1", "10.10.1.2")
    ping(w, "vmA2", "10.10.2.2")

    one, two = iperf_clients(w, [("vmA1", "10.10.1.2"), ("vmA2", "10.10.2.2")])
    print(f"limited {one:.1f} Mbit/s, unlimited at the same time {two:.1f} Mbit/s")
    assert RATE * 0.85 <= one <= RATE * 1.15
    assert two > 3 * RATE

    # ensuring again changes nothing: same devices, no qdisc call
    calls: list[str] = []
    nl = w.dp["gwA"]._nl
    for name in ("set_tbf", "delete_qdisc"):
        real = getattr(nl, name)
        setattr(nl, name, lambda *a, _n=name, _r=real: (calls.append(_n), _r(*a))[1])
    before = ifindexes(w.ns["gwA"])
    for vx in want("A", limited).vxlans.values():
        w.dp["gwA"].ensure_vxlan(vx)
    assert calls == [] and ifindexes(w.ns["gwA"]) == before

    # a new rate, then none: the same device, only its qdisc changes
    assert converge(w.dp["gwA"], want("A", {1: {"rate_mbit": 20}, 2: {}})) == [
        "ensure_vxlan icv100"
    ]
    assert converge(w.dp["gwA"], want("A", {1: {}, 2: {}})) == ["ensure_vxlan icv100"]
    assert calls == ["set_tbf", "delete_qdisc"]
    assert ifindexes(w.ns["gwA"]) == before
    assert "tbf" not in sh(*nsx(w.ns["gwA"], "tc", "qdisc", "show", "dev", "icv100"))
    assert w.dp["gwA"].observe().state.vxlans["icv100"].rate_mbit is None
    old_server = ("ss", "-Hltn", "src", "10.10.1.2:5201")  # the measurement before, until it ends
    wait_for(lambda: not sh(*nsx(w.ns["vmB1"], *old_server)).strip(), 10, 0.1, "iperf3 to exit")
    (free,) = iperf_clients(w, [("vmA1", "10.10.1.2")])
    print(f"after removing the limit {free:.1f} Mbit/s")
    assert free > 3 * RATE
