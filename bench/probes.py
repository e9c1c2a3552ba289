"""The cost of the tunnel probes (domain/probe.py, drivers/probe/linux.py): two namespaces
joined by a veth, N VXLAN devices in each (one per bridge, as the agent builds them), a prober
in each probing its N ports and answering the other's; the CPU time of one of them over a
measured interval, as a share of one core, beside the same process idle (prober not started);
and the same with a thread beside each prober that holds the interpreter (as a long reconciler
pass does): the ports still answering, beside the run without it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench import ns as nsmod
from intercloud.lab import namespaces

PREFIX = "icp"  # the devices' prefix (as an agent's dataplane.prefix)
FIRST_VNI = 5000
WARMUP = 5.0


def build(topo: nsmod.Topology, n: int) -> tuple[str, str]:
    a, b = topo.add("pra"), topo.add("prb")
    namespaces.add_veth(a, "eth0", b, "eth0")
    ends = ((a, "198.18.250.1", "198.18.250.2"), (b, "198.18.250.2", "198.18.250.1"))
    for name, me, other in ends:
        namespaces.add_address(name, "eth0", f"{me}/24")
        namespaces.set_up(name, "eth0")
        lines = []
        for i in range(n):
            vni, bridge, vx = FIRST_VNI + i, f"{PREFIX}b{i}", f"{PREFIX}v{FIRST_VNI + i}"
            lines += [
                f"link add {bridge} type bridge",
                f"link add {vx} type vxlan id {vni} local {me} remote {other} dstport 4789",
                f"link set {vx} master {bridge} mtu 1450 up",
                f"link set {bridge} up",
            ]
        nsmod.ip_batch(name, lines)
    return a, b


def _run_pair(a: str, b: str, n: int, seconds: float, mode: str) -> dict[str, Any]:
    # not in bench/programs (those run on the standard library alone): it runs the agent's code
    program = str(Path(__file__).with_name("probe_process.py"))
    args = [PREFIX, str(FIRST_VNI), str(n), str(WARMUP), str(seconds), mode]
    # a leads (probes) every port, b follows (answers, and learns from a's next request)
    procs = [
        nsmod.exec_popen(ns, [sys.executable, program, *args, me, peer], stdout=-1, stderr=-1)
        for ns, me, peer in ((a, "a", "b"), (b, "b", "a"))
    ]
    outs = [p.communicate(timeout=WARMUP + seconds + 60) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        if p.returncode != 0:
            raise RuntimeError(f"probe_process failed: {err.strip()[-500:]}")
    lead, follow = (json.loads(out.splitlines()[-1]) for out, _ in outs)
    return {**lead, "follower": follow}


def measure(topo: nsmod.Topology, n: int, seconds: float) -> dict[str, Any]:
    a, b = build(topo, n)
    try:
        idle = _run_pair(a, b, n, seconds, "idle")
        probing = _run_pair(a, b, n, seconds, "probe")
        busy = _run_pair(a, b, n, seconds, "busy")
    finally:
        for name in (a, b):
            namespaces.delete_namespace(name)
            topo.made.remove(name)
    for what in (idle, probing, idle["follower"], probing["follower"]):
        what["core_pct"] = 100 * what["cpu_s"] / what["wall_s"]
    return {"tunnels": n, "seconds": seconds, "idle": idle, "probing": probing, "busy": busy}


def section(bench: Any) -> None:
    """`python -m bench`'s probes section (bench/run.py `Run`) and the figures it adds."""
    n, seconds = bench.scale_n, (5.0 if bench.mode.short else 30.0)
    out = measure(bench.topo, n, seconds)
    bench.details["probes"] = out
    probing, idle = out["probing"], out["idle"]
    lead, follow = probing["core_pct"], probing["follower"]["core_pct"]
    # an agent leads some ports and follows the others: the dearer role, as if all were so
    bench.figs.add(
        "probes.cost",
        "probes",
        f"tunnel probes at {n} tunnel ports, % of one core (the dearer of lead/follow)",
        max(lead, follow),
        "%",
        baseline=("probes.idle", "same process, prober not started", idle["core_pct"]),
        better="lower",
        target="value < 1",
        note=f"lead {lead:.2f} %, follow {follow:.2f} % (period "
        f"{probing.get('period_s')} s, {probing.get('frames_per_s', 0):.0f} requests/s, "
        f"{probing['follower'].get('frames_per_s', 0):.0f} answers/s); "
        f"{probing['answering']}/{n} led ports answering, "
        f"{probing['follower']['answering']}/{n} followed, {probing['silent']} silent",
    )
    busy = out["busy"]
    bench.figs.add(
        "probes.under_load",
        "probes",
        f"led tunnel ports answering at {n}, a thread holding the interpreter meanwhile, %",
        100 * busy["answering"] / n,
        "%",
        baseline=("probes.answering", "the same, no such thread", 100 * probing["answering"] / n),
        target="value >= 99",
        note=f"{busy['silent']} silent, {busy.get('frames_per_s', 0):.0f} requests/s (budget "
        f"{busy.get('budget')}/s, period {busy.get('period_s')} s)",
    )
