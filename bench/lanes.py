"""Balanced lanes against VPNaaS, by number of flows (`python -m bench --only lanes`).

Three configurations, measured round robin (rep 1 of each, then rep 2, ...) in the same run,
for 10, 16 and 64 TCP flows (iperf3 -P N):

    ic_enc            an intercloud expansion, encrypted, the lab's default lanes (2 charons
                      per gateway), flows placed by the agent (domain/lane_balance.py)
    vpnaas            the VPNaaS equivalent: one charon per router (vpnaas.py)
    vpnaas_2charons   VPNaaS split by hand over 2 charons per router: odd client ports through
                      the second (iperf3 --cport), exactly half the flows each: the ceiling of
                      the lanes idea on this machine
    ic_enc_hash       the same expansion in a second lab whose gateways steer as before
                      balancing: lane = jhash(VXLAN source port) mod 2, one rule put before the
                      agent's, and no conntrack (what balancing bought, in the same run)

Targets (issue 19): ic_enc >= 1.25x vpnaas and >= 0.95x vpnaas_2charons, for every N.
Besides the throughputs: how the agent's lanes shared the bytes (its nft counters), and the
load average before and after, since other work on the machine moves these figures.
"""

from __future__ import annotations

import os
import statistics
import subprocess
from typing import Any

from bench import dataplane, measure, vpnaas
from bench.dataplane import Config
from intercloud.drivers.ipsec.lane_steering import LaneSteering
from intercloud.lab.topology import DEFAULT_LANES

STREAMS = (10, 16, 64)
TARGETS = {"vpnaas": "ratio >= 1.25", "vpnaas_2charons": "ratio >= 0.95"}


def _lane_counters(gateway: str) -> list[int]:
    return LaneSteering(DEFAULT_LANES, 4789, netns=gateway).counters() or [0] * DEFAULT_LANES


def _hash_steering(gateway: str) -> None:
    """The steering before balancing: its one rule, put before the agent's (which are then
    skipped), and no conntrack in the gateway (it had none: nothing used it)."""
    rule = "udp dport 4789 meta mark set jhash udp sport mod 2 offset 0x1d0 accept"
    untracked = """table ip bench_notrack {
    chain out { type filter hook output priority raw; policy accept; notrack; }
    chain pre { type filter hook prerouting priority raw; policy accept; notrack; }
}
"""
    for argv, stdin in (
        (["nft", "insert", "rule", "ip", "intercloud_lanes", "steer", *rule.split()], None),
        (["nft", "-f", "-"], untracked),
    ):
        subprocess.run(
            ["ip", "netns", "exec", gateway, *argv], input=stdin, text=True, check=True,
            capture_output=True,
        )  # fmt: skip


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run(r: Any) -> None:
    """One section of `python -m bench` (r: bench.run.Run)."""
    lab_h = r.lab("h")
    hashed = dataplane.fill_lab(lab_h, encrypt=True)
    hashed.key, hashed.label = "ic_enc_hash", "encrypted expansion, lanes by flow hash"
    for cloud in ("A", "B"):
        _hash_steering(lab_h.namespace(cloud))
    cfgs = [
        dataplane.fill_lab(r.lab("l"), encrypt=True),
        vpnaas.build(r.topo, r.workdir, tag="lp"),
        vpnaas.build(r.topo, r.workdir, lanes=2, tag="lc"),
        hashed,
    ]
    r.charon_pids |= {pid for c in cfgs for pid in c.ep.charon_pids}
    gateway = cfgs[0].ep.wire_ns
    servers = []
    out: dict[str, Any] = {"load_before": _load(), "streams": {}}
    try:
        for c in cfgs:
            if not measure.ping_ok(c.ep.client_ns, c.ep.server_ip, count=3, wait=2.0):
                raise RuntimeError(f"{c.key}: {c.ep.server_ip} does not answer ping")
            servers.append(measure.Iperf3Server(c.ep.server_ns))
        for n in STREAMS:
            out["streams"][n] = _measure(r, cfgs, n, gateway)
    finally:
        for server in servers:
            server.stop()
    out["load_after"] = _load()
    r.details["lanes"] = out
    _figures(r, out)


def _measure(r: Any, cfgs: list[Config], n: int, gateway: str) -> dict[str, Any]:
    runs: dict[str, list[float]] = {c.key: [] for c in cfgs}
    shares = []
    for rep in range(r.mode.tcp_reps):
        for c in cfgs:
            before = _lane_counters(gateway) if c.key == "ic_enc" else []
            gbps = measure.tcp(c.ep, r.mode, streams=n)
            runs[c.key].append(round(gbps, 4))
            if before:
                grown = [a - b for a, b in zip(_lane_counters(gateway), before, strict=True)]
                shares.append([round(g / max(sum(grown), 1), 3) for g in grown])
            r.log(f"lanes -P {n} rep {rep + 1} {c.key}: {gbps:.3f} Gb/s, load {_load()}")
    return {
        "tcp_runs_gbps": runs,
        "tcp_gbps": {k: round(statistics.median(v), 4) for k, v in runs.items()},
        "ic_enc_lane_shares": shares,  # per run: the share of bytes each lane carried
        "load": _load(),
    }


def _figures(r: Any, out: dict[str, Any]) -> None:
    load = f"load average {out['load_before']} before, {out['load_after']} after"
    for n, m in out["streams"].items():
        med = m["tcp_gbps"]
        split = " / ".join(str(s) for s in m["ic_enc_lane_shares"])
        for base, label in (
            ("vpnaas", "VPNaaS equivalent, one charon per router"),
            ("vpnaas_2charons", "VPNaaS split by hand over 2 charons"),
            ("ic_enc_hash", "the same with lanes by flow hash (before)"),
        ):
            r.figs.add(
                f"lanes.{n}.vs_{base}",
                "lanes",
                f"TCP -P {n} encrypted expansion ({DEFAULT_LANES} balanced lanes) vs {label}",
                med["ic_enc"],
                "Gb/s",
                baseline=(f"lanes.{n}.{base}", base, med[base]),
                target=TARGETS.get(base, ""),
                note=f"lane shares per run {split}; {load}",
            )
