"""The data-plane configurations measured against each other:

    underlay   gateway to gateway through the WAN router, no tunnel (the physical limit)
    vxlan      a plain kernel VXLAN made by hand: VM - bridge - vxlan ~ WAN ~ vxlan - bridge - VM
               (VMs with MTU 1450, the usual 1500 - 50, as OpenStack would give them)
    ic_plain   an intercloud expansion between two lab clouds, unencrypted link
    ic_enc     an intercloud expansion between two lab clouds, default encrypted link
    (vpnaas*   see vpnaas.py)

TCP is measured round robin over all configurations (rep 1 of each, then rep 2, ...) so that a
background load that comes and goes hits all of them alike; then UDP by size, RTT and wire
packets per datagram, one configuration after the other.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench import measure
from bench import ns as nsmod
from bench.measure import Endpoint, Mode, Suite
from intercloud.lab import namespaces
from intercloud.lab.topology import DEFAULT_LANES, Lab


@dataclass
class Config:
    key: str
    label: str
    ep: Endpoint
    notes: str = ""
    suite: Suite = field(default_factory=Suite)
    extra: dict[str, Any] = field(default_factory=dict)


def charon_pids(*names: str) -> list[int]:
    pids = []
    for ns in names:
        for pid in namespaces.namespace_pids(ns):
            try:
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if comm == "charon":
                pids.append(pid)
    return pids


# --- underlay + plain kernel VXLAN --------------------------------------------------------------


def build_plain(topo: nsmod.Topology) -> list[Config]:
    wan = topo.wan()
    gws = [topo.add("g1"), topo.add("g2")]
    ips = [topo.uplink(wan, gw, i + 1) for i, gw in enumerate(gws)]
    vms = []
    for i, gw in enumerate(gws):
        nsmod.ip(gw, "link", "add", "br0", "type", "bridge")
        nsmod.ip(gw, "link", "set", "br0", "up")
        nsmod.ip(
            gw,
            "link",
            "add",
            "vx0",
            "type",
            "vxlan",
            "id",
            "42",
            "local",
            ips[i],
            "remote",
            ips[1 - i],
            "dstport",
            "4789",
        )
        nsmod.ip(gw, "link", "set", "vx0", "master", "br0", "up")
        vms.append(topo.vm(f"v{i + 1}", gw, "tap0", f"10.30.0.{i + 1}/24", bridge="br0", mtu=1450))
    return [
        Config(
            "underlay",
            "underlay (gateway to gateway, no tunnel)",
            Endpoint(gws[0], gws[1], ips[1], gws[0], "eth0"),
            "routed through the WAN router namespace, MTU 1500",
        ),
        Config(
            "vxlan",
            "plain kernel VXLAN by hand",
            Endpoint(vms[0], vms[1], "10.30.0.2", gws[0], "eth0"),
            "ip link add vxlan id 42 remote ... dstport 4789; VM MTU 1450",
        ),
    ]


# --- intercloud expansions in a lab -------------------------------------------------------------


def wait_for(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def expansion_active(lab: Lab, cloud: str, project: str, uid: str) -> dict | None:
    exp = lab.api(cloud, "GET", f"/v1/expansions/{uid}", token=project)
    return exp if exp["status"] == "active" else None


def expand(lab: Lab, cloud: str, project: str, network: str, peers: list[str]) -> dict:
    body = {"network": network, "peers": peers}
    exp = lab.api(cloud, "POST", "/v1/expansions", body, token=project)
    return wait_for(
        lambda: expansion_active(lab, cloud, project, exp["id"]), 60, f"{network} active"
    )


def fill_lab(lab: Lab, encrypt: bool, lanes: int = DEFAULT_LANES) -> Config:
    """Two clouds peered, A's net1 expanded to B, VM a1 on net1 and b1 on its replica;
    encrypted: `lanes` charons per gateway (the lab's default unless told)."""
    lab.up(2, encrypt=encrypt, lanes=lanes if encrypt else 1)
    lab.peer("A", "B")
    wait_for(lambda: lab.api("A", "GET", "/v1/links/B")["status"]["state"] == "up", 60, "link")
    exp = expand(lab, "A", "p1", "net1", ["B"])
    lab.add_vm("A", "a1", "10.10.0.1/24", network="net1")
    lab.add_vm("B", "b1", "10.10.0.2/24", replica_of="A/net1")
    budget = lab.api("A", "GET", "/v1/links/B").get("mtu_budget", {})
    gws = (lab.cloud("A").ns, lab.cloud("B").ns)
    ep = Endpoint(
        lab.namespace("A/a1"),
        lab.namespace("B/b1"),
        "10.10.0.2",
        gws[0],
        "eth0",
        charon_pids(*gws) if encrypt else (),
    )
    if not encrypt:
        key, label = "ic_plain", "intercloud expansion, unencrypted"
    elif lanes == DEFAULT_LANES:
        key, label = "ic_enc", f"intercloud expansion, encrypted ({lanes} lanes, default)"
    else:
        key, label = f"ic_enc_{lanes}lane", f"intercloud expansion, encrypted, {lanes} lane(s)"
    notes = (
        f"vni {exp['peers'][0]['vni']}, VM MTU 1500, link budget vm_mtu "
        f"{budget.get('vm_mtu')} / mss {budget.get('tcp_mss')} ({budget.get('encapsulation')})"
    )
    return Config(key, label, ep, notes)


# --- running the measurements -------------------------------------------------------------------


def measure_all(
    configs: list[Config], mode: Mode, log: Callable[[str], None], tcp_only: set[str] = frozenset()
) -> None:
    """TCP round robin over all configurations, then the rest one by one (not for those in
    `tcp_only`)."""
    servers = {}
    try:
        for c in configs:
            if not measure.ping_ok(c.ep.client_ns, c.ep.server_ip, count=3, wait=2.0):
                raise RuntimeError(f"{c.key}: {c.ep.server_ip} does not answer ping")
            servers[c.key] = measure.Iperf3Server(c.ep.server_ns)
        cpus: dict[str, list[dict]] = {c.key: [] for c in configs}
        for rep in range(mode.tcp_reps):
            for c in configs:
                gbps, cpu = measure.with_cpu(lambda c=c: measure.tcp(c.ep, mode), c.ep.charon_pids)
                c.suite.tcp_runs.append(round(gbps, 4))
                cpus[c.key].append(cpu)
                log(f"TCP rep {rep + 1} {c.key}: {gbps:.3f} Gb/s, cpu {cpu}")
        for c in configs:
            runs = c.suite.tcp_runs
            c.suite.tcp_gbps = round(statistics.median(runs), 4)
            c.suite.cpu = cpus[c.key][runs.index(sorted(runs)[len(runs) // 2])]
            if c.key in tcp_only:
                continue
            for size in measure.UDP_SIZES:
                c.suite.udp[size] = measure.udp(c.ep, size, mode, c.suite.tcp_gbps * 1000)
            log(
                f"UDP {c.key}: "
                + ", ".join(
                    f"{s}B {v['mbps']:.0f} Mb/s loss {v['loss_pct']:.0f}%"
                    for s, v in c.suite.udp.items()
                )
            )
    finally:
        for server in servers.values():
            server.stop()
    for c in configs:
        if c.key in tcp_only:
            continue
        c.suite.rtt_ms = measure.rtt_ms(c.ep.client_ns, c.ep.server_ip, mode.pings)
        for size in measure.UDP_SIZES:
            c.suite.wire_packets[size] = measure.wire_packets(c.ep, size, mode.frag_datagrams)
        log(f"RTT {c.key}: {c.suite.rtt_ms} ms; wire packets/datagram {c.suite.wire_packets}")
