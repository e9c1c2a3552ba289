"""Scale: N expansions over 3 links on one agent, with the real Linux data plane.

A lab of 4 unencrypted clouds; agent A is restarted with its own agent.toml holding N more
networks (net0..net<N-1> over projects s0, s1, s2, each on its own tenant bridge tn<i>, made
with `ip -batch`) and peered with B, C and D (agreements for all projects, limit N). Network i
of project s<i%3> is expanded to one peer, round robin, so each link carries N/3.

Phases, each timed: create all (POSTs from 8 concurrent clients until every expansion is
active); reconcile from nothing (agent stopped, every device and the nft table it made deleted,
the kernel and the peers left to settle (`_settle`), agent started, until all its devices
exist and are up again); restart on a converged host
(first pass, must change nothing) and the converged passes after it; delete all (until the
lists are empty and A's devices are gone).
Peak RSS: VmHWM of agent A's processes. Baseline: the kernel's floor, the same devices made
and deleted with `ip -batch` in a scratch namespace, the way the agent makes and deletes many
(IPv6 off before up; deleted together in one device group).
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import ns as nsmod
from bench import quiet_kernel, rebuild_watch
from bench.dataplane import wait_for
from intercloud import config
from intercloud.drivers.dataplane.linux import ipbatch, ipv6
from intercloud.lab import agentconf, namespaces, nsexec
from intercloud.lab.nsexec import LabError
from intercloud.lab.topology import Lab

PEERS = ("B", "C", "D")
PROJECTS = ("s0", "s1", "s2")
STEADY_PASSES = 3  # converged passes timed after the first pass of a restart


def _configure_a(lab: Lab, n: int) -> dict[str, str]:
    """Rewrite A's agent.toml with N more networks; returns the projects' tokens."""
    c = lab.cloud("A")
    cfg = config.load(c.config, env={})
    tokens = {p: secrets.token_hex(16) for p in PROJECTS}
    cfg.projects += [config.ProjectDef(p, t) for p, t in tokens.items()]
    for i in range(n):
        cidr = f"10.{100 + i // 256}.{i % 256}.0/24"
        cfg.networks.append(config.NetworkDef(f"net{i}", PROJECTS[i % 3], cidr, f"tn{i}"))
    agentconf.write(Path(c.config), cfg)
    return tokens


def _bulk(lab: Lab, cfg: dict[str, Any], timeout: float) -> dict[str, Any]:
    cfg = {
        "base": "https://127.0.0.1:8700",  # the lab's agents serve TLS, certificate from its CA
        "cafile": lab.cloud("A").ca,
        "concurrency": 8,
        "timeout": timeout,
        **cfg,
    }
    r = nsexec.run_program(
        lab.cloud("A").ns,
        "bench.programs.bulk_requests",
        input=json.dumps(cfg),
        timeout=timeout + 120,
    )
    if r.returncode != 0:
        raise RuntimeError(
            f"bulk API calls failed (exit {r.returncode}): {r.stderr.strip()[-500:]}"
        )
    out = json.loads(r.stdout)
    if not out["done"]:
        raise RuntimeError(f"not done after {timeout:.0f}s: {out['counts']}")
    return out


def _ours(ns: str, up: bool = False) -> dict[str, int]:
    """The agent's devices in ns (only those up: `up`), by kind (icv: VXLAN; icb bridges and
    icp/icq veth ends only where a layout still needs them: encrypted or relayed expansions)."""
    return rebuild_watch.ours(_names(ns, up))


def _hwm_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


Snapshot = dict[int, tuple[str, float]]  # pid -> (command, CPU seconds)


def _cpu_seconds() -> Snapshot:
    """pid -> (command, CPU seconds it and its reaped children used), every process."""
    tick = os.sysconf("SC_CLK_TCK")
    return {
        pid: (comm, sum(int(x) for x in fields[11:15]) / tick)
        for pid, comm, fields in quiet_kernel.tasks()
    }


def cpu_by_whom(before: Snapshot, after: Snapshot, agents: dict[int, str]) -> dict[str, float]:
    """CPU seconds used between two _cpu_seconds() snapshots, by lab agent (its name in
    `agents`) or else by command; a process that started and ended in between is counted in
    its parent (its children's time), one started in between in full."""
    used: dict[str, float] = {}
    for pid, (comm, seconds) in after.items():
        grown = seconds - (before[pid][1] if pid in before else 0.0)
        if grown > 0:
            who = agents.get(pid, comm)
            used[who] = round(used.get(who, 0.0) + grown, 2)
    return dict(sorted(used.items(), key=lambda kv: -kv[1]))


def _agents(lab: Lab) -> dict[int, str]:
    """pid -> name of the lab's agents, and of this process (the benchmark's own polling)."""
    named = {c.pid: f"agent {name}" for name in ("A", *PEERS) if (c := lab.cloud(name)).pid}
    return {os.getpid(): "this benchmark", **named}


def _status(lab: Lab, cloud: str = "A") -> dict[str, Any]:
    return lab.api(cloud, "GET", "/v1/status")


def _steady_passes(lab: Lab, k: int, timeout: float) -> dict[str, Any]:
    """The `k` passes after the one running now (periodic passes of a converged agent, its
    peers re-checked in turn): each one's duration and phases, read from A's status once a
    second (a pass follows the last one after 5 s in the lab)."""
    seen: dict[int, dict[str, Any]] = {}
    first = _status(lab)["reconciler"]["passes"] + 1  # the one running now may be half seen

    def all_seen() -> bool:
        st = _status(lab)["reconciler"]
        if st["passes"] > first:
            seen.setdefault(st["passes"], st)
        return len(seen) >= k

    wait_for(all_seen, timeout, f"{k} more passes", interval=1.0)
    passes = [seen[p] for p in sorted(seen)]
    durations = [st["last_duration_ms"] for st in passes]
    slowest = passes[durations.index(max(durations))]
    return {
        "pass_ms": durations,
        "median_ms": sorted(durations)[len(durations) // 2],
        "changes": [st["last_changes"] for st in passes],
        "gc_ms": [st.get("last_gc_ms") for st in passes],  # the collector's part of each
        "slowest_phases_ms": slowest.get("last_phases_ms"),
    }


Floor = Callable[[], dict[str, float]]


def run(lab: Lab, n: int, log, floor_now: Floor | None = None) -> dict[str, Any]:
    """`floor_now`: measures the kernel floor once more with the lab running, in the moment
    before the agent is started to reconcile from nothing (the same machine as the agent's)."""
    out: dict[str, Any] = {"expansions": n, "links": len(PEERS)}
    lab.up(4, encrypt=False)
    gw = lab.cloud("A").ns
    try:
        _tenant_bridges(gw, n)
        return _measure(lab, n, log, out, floor_now)
    finally:  # A's devices deleted together, not by its namespace's slow teardown
        lab.stop_agent("A")
        ours = [x for x in _names(gw) if x[:3] in ("icb", "icv", "icp") or x.startswith("tn")]
        if ours:
            _delete_together(gw, ours)


def _names(ns: str, up: bool = False) -> list[str]:
    return [
        ln.split(":", 2)[1].strip().split("@")[0]
        for ln in nsmod.ip(ns, "-o", "link", "show", *(["up"] if up else [])).stdout.splitlines()
    ]


def _settle(lab: Lab, n: int, after: str) -> dict[str, float]:
    """Waits, before the from-nothing clock starts, for the debts of what came before it:
    the kernel busy with deleted devices (a guard, never seen so far: quiet_kernel.py), and
    B, C and D catching up after the floor's batch, which holds the kernel's lock for seconds
    (at 10,000 one of B's reads found no answer for 60 s, and its next pass, inside A's
    window, marked 3,334 replicas in error, then active again, and flushed them). Each peer
    finishes a pass begun after this call. A host reconciling after a reboot pays neither.
    Also before the floor with the lab running, for the same debts of A's devices deleted.
    The seconds each wait took."""
    waited = {"kernel": quiet_kernel.wait_until_quiet(max(60, n / 50))}
    t0 = time.monotonic()
    begun = {p: _status(lab, p)["reconciler"]["passes"] + 1 for p in PEERS}
    for peer, passes in begun.items():
        wait_for(
            lambda p=peer, k=passes: _status(lab, p)["reconciler"]["passes"] > k,
            max(120, n / 20),
            f"a pass of {peer}'s after {after}",
            interval=0.5,
        )
    waited["peers"] = round(time.monotonic() - t0, 2)
    return waited


def _measure(lab: Lab, n: int, log, out: dict[str, Any], floor_now: Floor | None) -> dict[str, Any]:
    gw = lab.cloud("A").ns
    tokens = _configure_a(lab, n)
    lab.restart_agent("A")
    wait_for(lambda: _status(lab)["reconciler"]["passes"] >= 1, 60, "A's first pass")
    out["rss_idle_mb"] = round(_rss_mb(lab.cloud("A").pid), 1)
    for peer in PEERS:
        lab.peer("A", peer, projects=("*",), max_expansions_per_project=n)
    for peer in PEERS:
        wait_for(
            lambda p=peer: lab.api("A", "GET", f"/v1/links/{p}")["status"]["state"] == "up",
            60,
            f"link A-{peer}",
        )
    hwm = []

    requests = [
        {
            "method": "POST",
            "path": "/v1/expansions",
            "token": tokens[PROJECTS[i % 3]],
            "body": {"network": f"net{i}", "peers": [PEERS[(i // 3) % 3]]},
        }
        for i in range(n)
    ]
    created = _bulk(
        lab,
        {"requests": requests, "tokens": list(tokens.values()), "until": "active"},
        timeout=max(600, 3 * n),
    )
    out["create_all_s"] = round(created["done_s"], 2)
    out["create_posts_s"] = round(created["sent_s"], 2)
    expected, expected_up = _ours(gw), _ours(gw, up=True)
    out["devices_on_a"] = expected
    log(
        f"scale: {n} expansions active in {created['done_s']:.1f} s "
        f"(POSTs {created['sent_s']:.1f} s); A's devices {expected}"
    )

    # reconcile from nothing: stop, delete every device and the nft table, start
    hwm.append(_hwm_mb(lab.cloud("A").pid))
    lab.stop_agent("A")
    _delete_together(gw, [x for x in _names(gw) if x[:3] in ("icb", "icv", "icp")])
    nsmod.exec_run(gw, ["nft", "delete", "table", "bridge", "intercloud_ic"])
    left = _ours(gw)
    if floor_now is not None:  # B, C and D run on (and probe A's tunnels, silent now)
        # in the state A will start in: the peers done with A's devices going
        out["settled_before_floor_s"] = _settle(lab, n, "A's devices deleted")
        out["kernel_floor_lab_running"] = {**floor_now(), "load": os.getloadavg()[0]}
        log(f"scale: kernel floor with the lab running {out['kernel_floor_lab_running']}")
    out["settled_before_start_s"] = _settle(lab, n, "the floor")
    log(f"scale: kernel and peers settled before A's start {out['settled_before_start_s']}")
    watch = rebuild_watch.RebuildWatch(gw, expected_up, lambda up: _names(gw, up))
    cpu_before = _cpu_seconds()
    t0 = time.monotonic()
    try:
        lab.start_agent("A", wait=False)
    except (IndexError, LabError) as exc:  # it ended at once: say why (its log goes at cleanup)
        watch.close()
        raise RuntimeError(f"agent A did not start: {lab.agent_log('A', 15)}") from exc
    out["reconcile_from_nothing_s"] = round(watch.wait(max(300, n)) - t0, 2)
    # who used the two cores meanwhile: in a federation B, C and D are other machines; here
    # they share A's, and A's restart makes them work (its tunnels fall silent, then answer)
    out["cpu_s_during_reconcile_from_nothing"] = cpu_by_whom(
        cpu_before, _cpu_seconds(), _agents(lab)
    )
    wait_for(lambda: _ours(gw) == expected, 60, "A's data plane as before (no extra device)")
    out["left_before_reconcile"] = left
    log(f"scale: reconcile from nothing {out['reconcile_from_nothing_s']} s")
    log(f"scale: CPU seconds meanwhile {out['cpu_s_during_reconcile_from_nothing']}")
    wait_for(lambda: _status(lab)["reconciler"]["passes"] >= 1, max(120, n), "first pass done")
    st = _status(lab)["reconciler"]
    out["first_pass_from_nothing"] = {
        k: st.get(k) for k in ("last_duration_ms", "last_changes", "last_phases_ms", "last_gc_ms")
    }
    log(f"scale: first pass from nothing {out['first_pass_from_nothing']}")

    # restart on a converged host: the first pass must change nothing
    hwm.append(_hwm_mb(lab.cloud("A").pid))
    t0 = time.monotonic()
    lab.restart_agent("A")
    wait_for(lambda: _status(lab)["reconciler"]["passes"] >= 1, max(120, n), "first pass")
    st = _status(lab)["reconciler"]
    out["restart_converged"] = {
        "first_pass_ms": st["last_duration_ms"],
        "first_pass_changes": st["last_changes"],
        "first_pass_phases_ms": st.get("last_phases_ms"),
        "first_pass_gc_ms": st.get("last_gc_ms"),
        "start_to_first_pass_s": round(time.monotonic() - t0, 2),
    }
    log(f"scale: restart on converged host: {out['restart_converged']}")
    out["steady_converged"] = _steady_passes(lab, STEADY_PASSES, max(120, n))
    log(f"scale: steady converged passes: {out['steady_converged']}")

    # delete all
    ids = created["ids"]
    requests = [
        {"method": "DELETE", "path": f"/v1/expansions/{uid}", "token": tokens[PROJECTS[i % 3]]}
        for i, uid in enumerate(ids)
    ]
    t0 = time.monotonic()
    deleted = _bulk(
        lab,
        {"requests": requests, "tokens": list(tokens.values()), "until": "none"},
        timeout=max(600, 2 * n),
    )
    wait_for(lambda: not _ours(gw), max(300, n), "A's devices removed", interval=0.2)
    out["delete_all_s"] = round(time.monotonic() - t0, 2)
    out["delete_api_empty_s"] = round(deleted["done_s"], 2)
    hwm.append(_hwm_mb(lab.cloud("A").pid))
    out["rss_peak_mb"] = round(max(hwm), 1)
    out["rss_peak_by_phase_mb"] = [round(x, 1) for x in hwm]
    log(f"scale: delete all {out['delete_all_s']} s; peak RSS {out['rss_peak_mb']} MB")
    return out


def _free_group(ns: str) -> int:
    group = ipbatch.free_group(ns)
    if group is None:
        raise RuntimeError(f"no free device group found in {ns}")
    return group


def _delete_together(ns: str, names: list[str]) -> None:
    nsmod.ip_batch(ns, ipbatch.delete_together(names, _free_group(ns)))


def _tenant_bridges(ns: str, n: int) -> None:
    """The tenants' bridges tn0..tn<n-1>, up, with IPv6 off as a cloud with thousands of
    networks would have them (with it on, each one's coming up walks every other's multicast
    route: 10,000 take minutes; drivers/dataplane/linux/ipv6.py), and no forward delay, as
    Neutron's Linux bridge agent makes its bridges. (With the kernel's default of 15 s, every
    port that joins a bridge without STP is announced once more 15 s later, when its forward
    delay timer ends: 3,000 new tunnel ports made the agent read the kernel again then.)"""
    names = [f"tn{i}" for i in range(n)]
    nsmod.ip_batch(ns, [f"link add {x} type bridge forward_delay 0" for x in names])
    ipv6.disable(names, ns)
    nsmod.ip_batch(ns, [f"link set {x} up" for x in names])


def make_by_hand(ns: str, n: int) -> None:
    """Tunnel ports icv1..icv<n> into tn0..tn<n-1>, as the agent makes them (one `ip -batch`
    made and configured, IPv6 off, one `ip -batch` up): the floor's work."""
    make = [
        f"link add name icv{i + 1} mtu 1450 master tn{i} type vxlan id {i + 1} "
        f"local 198.18.1.2 remote 198.18.{2 + i % 3}.2 dstport 4789 learning"
        for i in range(n)
    ]
    # isolated, as the agent makes a tunnel port of a network it relays nothing for
    make += [f"link set icv{i + 1} type bridge_slave isolated on" for i in range(n)]
    make += [f"link set icv{i + 1} alias intercloud:mtu=1450" for i in range(n)]
    nsmod.ip_batch(ns, make)
    ipv6.disable([f"icv{i + 1}" for i in range(n)], ns)
    nsmod.ip_batch(ns, [f"link set icv{i + 1} up" for i in range(n)])


def quiet_floor(topo: nsmod.Topology, n: int, times: int = 3) -> dict[str, Any]:
    """The kernel floor before anything else runs, `times` over: the median of each figure
    (a guard against one disturbed reading: at 10,000 a floor read 7.1 s one day and 12.2 s
    another, and 7.20-7.54 s three times in a row; about 3 minutes each there)."""
    runs = []
    for i in range(times):
        quiet_kernel.wait_until_quiet(max(60, n / 50))
        runs.append(kernel_floor(topo, n, f"k{i + 1}"))
    return {
        "create_s": statistics.median(r["create_s"] for r in runs),
        "delete_s": statistics.median(r["delete_s"] for r in runs),
        "runs": runs,
    }


def kernel_floor(topo: nsmod.Topology, n: int, tag: str = "k") -> dict[str, float]:
    """The same devices as the agent makes on A, the way it makes them: create, then delete.
    Since tunnel ports join the tenant's own bridge (no bridge of ours, no veth patch), that is
    one VXLAN device per expansion, made into its tenant bridge, isolated, marked (alias), IPv6
    off and set up. In a scratch namespace `tag`."""
    ns = topo.add(tag)
    _tenant_bridges(ns, n)
    # In phases, as the agent's batch path does (all made, then configured, then up): the
    # same lines device by device take about twice as long (each "up" waits for the link
    # events of the change before it).
    t0 = time.monotonic()
    make_by_hand(ns, n)
    created = time.monotonic() - t0
    group = _free_group(ns)
    t0 = time.monotonic()  # deleted together, as the agent deletes many (ipbatch.py)
    nsmod.ip_batch(ns, ipbatch.delete_together([f"icv{i + 1}" for i in range(n)], group))
    deleted = time.monotonic() - t0
    # the tenant bridges deleted together before their namespace goes: a namespace's devices
    # are otherwise destroyed one by one in the background, holding rtnl (10,000 bridges:
    # minutes in which no namespace can be made, the next section's `ip netns add` included)
    _delete_together(ns, [f"tn{i}" for i in range(n)])
    namespaces.delete_namespace(ns)
    topo.made.remove(ns)
    return {"create_s": round(created, 3), "delete_s": round(deleted, 3)}
