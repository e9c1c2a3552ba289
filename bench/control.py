"""Control-plane timings on a two-cloud encrypted lab (the default link policy):

* expansion to first ping: POST /v1/expansions with the link up, until VM a2 (on A's net2)
  gets its first echo reply from VM b2 (on B's replica); pings every 10 ms, ARP retried every
  10 ms (not every second, the kernel's default). b2 exists beforehand; a watcher in B's
  gateway plugs its port into the replica bridge the moment the agent creates it, as the
  cloud would plug a VM's port. Baseline: the same devices made by hand with `ip` in the plain
  VXLAN topology (bridge + vxlan on both sides), until the first reply (the kernel's floor).
* link up: both sides' links deleted, A's re-created, then the second side's POST /v1/links
  until both report `up`. Alternates which side posts second (A initiates IKE, being the lower
  name). Baseline: charon alone establishing the same IKE + CHILD_SA (the VPNaaS routers).
* API latency, 50 concurrent clients inside A's gateway namespace, each with its own
  keep-alive connection: reads (expansions as a project, links as admin, alternately), the
  same reads through the whole framework (with a query string, which the fast path of
  api/fast_reads.py leaves to FastAPI: what every read cost before it) and their floor (an
  unauthenticated GET: a 401 before any database work) by wrk; writes (POST +
  DELETE of a peer with the client's own names) and their floor by 50 asyncio/httpx clients,
  whose connections are opened before the clock starts (50 simultaneous connects took up to
  ~1.3 s here; that is the client's set-up, not the latency of a call).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from typing import Any

from bench import ns as nsmod
from bench.dataplane import wait_for
from intercloud.lab import namespaces, nsexec
from intercloud.lab.topology import Lab

# Runs in B's gateway: waits for a new icb* bridge, enslaves the VM's port to it.
BASE = "https://127.0.0.1:8700"  # the lab's agents serve TLS (their CA: lab.cloud(c).ca)


# Runs in a gateway: polls GET url every 20 ms until state is "up"; prints the wall time then.

# Runs in A's gateway: N concurrent clients, each with its own connection, each looping over
# its requests: first `warmup` seconds unrecorded (the server's worker threads, connections and
# caches start), then `seconds` recorded. The collector is off in this process: its own full
# passes (40-110 ms here) would be counted as the server's latency.


def _py(ns: str, program: str, *args: str, **kw: Any) -> subprocess.Popen[str]:
    """Start bench.programs.<program> inside `ns` (its output on a pipe)."""
    kw.setdefault("stdout", subprocess.PIPE)
    return nsexec.start_program(ns, f"bench.programs.{program}", *args, **kw)


def _ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError(f"helper did not start: {proc.communicate()}")


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of values."""
    ranked = sorted(values)
    return ranked[min(len(ranked) - 1, max(0, round(p / 100 * len(ranked) + 0.5) - 1))]


def _first_reply(ns: str, ip: str, timeout: float = 60.0) -> float:
    """Wall time of the first echo reply (ping every 10 ms, timestamps from ping -D)."""
    # No -w: with a deadline, ping quits at the first "host unreachable" (ARP not answered
    # yet); errors count towards -c too, hence a count it never reaches and a kill timer.
    argv = ["ping", "-n", "-D", "-i", "0.01", "-c", "1000000", ip]
    proc = nsmod.exec_popen(ns, argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    t0, seen = time.monotonic(), []
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        for line in proc.stdout:
            if "bytes from" in line:
                return float(line.split("]")[0].lstrip("["))
            seen = [*seen[-3:], line.strip()]
    finally:
        timer.cancel()
        proc.kill()
        proc.wait()
    raise RuntimeError(
        f"no reply from {ip} in {ns} (ping ended after {time.monotonic() - t0:.1f}s, "
        f"exit {proc.returncode}): {' | '.join(seen)}"
    )


def _fast_arp(vm: str) -> None:
    """ARP retried every 10 ms instead of every second: the first request, sent before the
    path exists, is lost, and the default 1 s retry would be measured instead of the path."""

    namespaces.sysctl(vm, "net.ipv4.neigh.eth0.retrans_time_ms", "10")


def _bridges(ns: str) -> set[str]:
    return {
        n for n in nsmod.exec_run(ns, ["ls", "/sys/class/net"]).stdout.split() if n[:3] == "icb"
    }


def expansion_to_ping(lab: Lab, reps: int, log) -> list[float]:
    """Seconds from POST /v1/expansions (p2's net2 to B) to the first reply, `reps` times.
    VM a2 sits on A's net2; VM b2 waits in B, its port plugged by the watcher."""
    gw_b = lab.cloud("B").ns
    lab.add_vm("A", "a2", "10.10.0.11/24", network="net2")
    b2 = f"{lab.name}-b-b2"  # inside the lab's names: removed with the lab
    namespaces.add_namespace(b2)
    namespaces.add_veth(b2, "eth0", gw_b, "vbb2")
    namespaces.set_up(b2, "eth0")
    namespaces.add_address(b2, "eth0", "10.10.0.12/24")
    a2 = lab.namespace("A/a2")
    for vm in (a2, b2):
        _fast_arp(vm)
    base = _bridges(gw_b)  # net1's replica, from the data-plane measurements
    times = []
    for _ in range(reps):
        # the last replica's bridge must be gone: a new one may get the same name
        wait_for(lambda: _bridges(gw_b) == base, 60, "B's last replica removed", interval=0.05)
        nsmod.ip(a2, "neigh", "flush", "all")
        plug = _py(gw_b, "plug_port", "vbb2", ",".join(base))
        _ready(plug)
        t0 = time.time()
        body = {"network": "net2", "peers": ["B"]}
        exp = lab.api("A", "POST", "/v1/expansions", body, token="p2")
        times.append(_first_reply(a2, "10.10.0.12") - t0)
        plug.wait(timeout=30)
        lab.api("A", "DELETE", f"/v1/expansions/{exp['id']}", token="p2")
        wait_for(lambda e=exp: _gone(lab, e["id"]), 60, "expansion deleted", interval=0.2)
        log(f"expansion to first ping: {times[-1]:.3f} s")
    namespaces.delete_namespace(b2)
    return times


def _gone(lab: Lab, uid: str, project: str = "p2") -> bool:
    status, _ = lab.api_raw("A", "GET", f"/v1/expansions/{uid}", token=project)
    return status == 404


def by_hand_to_ping(topo: nsmod.Topology, reps: int) -> list[float]:
    """Baseline: in the plain VXLAN topology, a bridge + vxlan made with `ip -batch` on both
    gateways and a waiting VM port enslaved, until the first reply (the kernel's floor)."""
    gws = [topo.ns("g1"), topo.ns("g2")]
    vms = [
        topo.vm(f"h{i + 1}", g, "tap1", f"10.31.0.{i + 1}/24", mtu=1450) for i, g in enumerate(gws)
    ]
    for vm in vms:
        _fast_arp(vm)
    times = []
    for _ in range(reps):
        nsmod.ip(vms[0], "neigh", "flush", "all")
        t0 = time.time()
        for i, g in enumerate(gws):
            nsmod.ip_batch(
                g,
                [
                    "link add brh type bridge",
                    "link set brh up",
                    f"link add vxh type vxlan id 77 local 198.18.{i + 1}.2 "
                    f"remote 198.18.{2 - i}.2 dstport 4789",
                    "link set vxh master brh up",
                    "link set tap1 master brh up",
                ],
            )
        times.append(_first_reply(vms[0], "10.31.0.2") - t0)
        for g in gws:
            nsmod.ip_batch(g, ["link del vxh", "link del brh"])
    return times


def link_up(lab: Lab, reps: int, log) -> list[dict[str, Any]]:
    """Seconds from the second side's POST /v1/links until both sides report `up`."""
    psk = next(p.psk for p in lab.state().peerings if sorted(p.clouds) == ["A", "B"])
    out = []
    for rep in range(reps):
        first, second = ("A", "B") if rep % 2 == 0 else ("B", "A")
        for c in ("A", "B"):
            lab.api(c, "DELETE", f"/v1/links/{'B' if c == 'A' else 'A'}")
        time.sleep(1.0)  # let both reconcilers unload the IPsec connections
        _post_link(lab, first, psk)
        pollers = {}
        for c in ("A", "B"):
            peer = "B" if c == "A" else "A"
            url = f"{BASE}/v1/links/{peer}"
            ca = lab.cloud(c).ca
            pollers[c] = _py(lab.cloud(c).ns, "poll_link_up", url, lab.token(c), "30", ca)
            _ready(pollers[c])
        t0 = time.time()
        _post_link(lab, second, psk)
        ups = {}
        for c, p in pollers.items():
            line = p.communicate(timeout=60)[0].strip()
            ups[c] = float(line) - t0 if line else float("inf")
        out.append({"second": second, "seconds": max(ups.values()), "per_side": ups})
        log(f"link up (second side {second}): {max(ups.values()):.3f} s {ups}")
    return out


def _post_link(lab: Lab, cloud: str, psk: str) -> None:
    peer = "B" if cloud == "A" else "A"
    body = {"peer": peer, "local_endpoint": lab.cloud(cloud).local_ip, "psk": psk}
    lab.api(cloud, "POST", "/v1/links", body)


# wrk's script for GETs: requests cycle through PATHS (path, bearer token or ""); `done` prints
# one JSON line. wrk (C, one event loop per thread) spends a few µs per request where the
# Python client below spends hundreds: with it, 50 clients measured the client (1,300-1,600
# requests/s, its own event loop queueing them) more than the agent (2,200-4,500/s with wrk).
_WRK_LUA = r"""
local paths = { PATHS }
local i = 0
request = function()
  i = i + 1
  local p = paths[(i % #paths) + 1]
  local h = {}
  if p[2] ~= "" then h["Authorization"] = "Bearer " .. p[2] end
  return wrk.format("GET", p[1], h)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "status_errors": %d, '
    .. '"socket_errors": %d}\n', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def wrk_gets(
    ns: str, base: str, paths: list[tuple[str, str]], clients: int, seconds: float, warmup: float
) -> dict[str, Any]:
    """p50/p99 (ms) of GETs by wrk in `ns`: `clients` connections on 2 threads, `seconds`
    measured after a separate `warmup` run."""
    table = ", ".join(f'{{"{path}", "{token}"}}' for path, token in paths)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_WRK_LUA.replace("PATHS", table))
    try:
        out = ""
        for secs in (warmup, seconds):
            argv = ["wrk", "-t2", f"-c{clients}", f"-d{max(secs, 1):.0f}s", "--timeout", "10s"]
            r = nsmod.exec_run(ns, [*argv, "-s", f.name, base + paths[0][0]], timeout=secs + 60)
            if r.returncode != 0:
                raise RuntimeError(f"wrk failed: {(r.stderr or r.stdout).strip()[-300:]}")
            out = r.stdout
    finally:
        os.unlink(f.name)
    data = json.loads(out.strip().splitlines()[-1])
    return {
        "requests": data["requests"],
        "p50_ms": round(data["p50_us"] / 1000, 2),
        "p99_ms": round(data["p99_us"] / 1000, 2),
        "rps": round(data["requests"] / (data["duration_us"] / 1e6), 1),
        "non_2xx": data["status_errors"],
        "socket_errors": data["socket_errors"],
        "client": "wrk",
    }


def api_latency(lab: Lab, clients: int, seconds: float, warmup: float) -> dict[str, Any]:
    """p50/p99 (ms) with `clients` at once, each kind for `seconds` after `warmup` seconds of
    the same load: reads and their floor (an unauthenticated GET, answered 401 before any
    database work) by wrk; writes (POST + DELETE a peer, each client its own names) and their
    floor by the Python client, which keeps per-client state."""
    admin, p1 = lab.token("A"), lab.token("A", "p1")
    ns, base = lab.cloud("A").ns, BASE
    load = os.getloadavg()[0]  # the machine is shared: each run says how busy it was
    passes = _passes(lab)
    floor = wrk_gets(ns, base, [("/v1/federation/health", "")], clients, seconds, warmup)
    if floor["non_2xx"] != floor["requests"] or floor["socket_errors"]:
        raise RuntimeError(f"API floor: not every answer was a 401: {floor}")
    reads = wrk_gets(
        ns, base, [("/v1/expansions", p1), ("/v1/links", admin)], clients, seconds, warmup
    )
    # the same reads through the whole framework (a query string: api/fast_reads.py leaves
    # those to it), as every read was answered before the fast path
    framework = wrk_gets(
        ns,
        base,
        [("/v1/expansions?via=framework", p1), ("/v1/links?via=framework", admin)],
        clients,
        seconds,
        warmup,
    )
    for kind, got in (("reads", reads), ("reads through the framework", framework)):
        if got["non_2xx"] or got["socket_errors"]:
            raise RuntimeError(f"API {kind}: errors {got}")
    peer = {
        "name": "zz{i}",
        "federation_url": "https://192.0.2.1:8700",
        "underlay_endpoint": "192.0.2.1",
        "key": "k" * 32,
    }
    kinds = {
        "writes_floor": [["GET", "/v1/federation/health", None, None]],
        "writes": [["POST", "/v1/peers", peer, admin], ["DELETE", "/v1/peers/zz{i}", None, admin]],
    }
    cfg = {"base": BASE, "clients": clients, "seconds": seconds, "cafile": lab.cloud("A").ca}
    cfg["warmup"] = warmup
    cfg["kinds"] = kinds
    proc = _py(lab.cloud("A").ns, "api_clients", stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(json.dumps(cfg), timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"API benchmark failed: {err.strip()[-500:]}")
    result: dict[str, Any] = {"floor": floor, "reads": reads, "reads_framework": framework}
    result["passes"] = _passes(lab) - passes  # the reconciler's passes during the measurement
    result["load_average"] = [round(load, 2), round(os.getloadavg()[0], 2)]  # start, end
    for kind, data in json.loads(out).items():
        lat = [x * 1000 for v in data["latencies"].values() for x in v]
        result[kind] = {
            "requests": len(lat),
            "p50_ms": round(statistics.median(lat), 2),
            "p99_ms": round(pct(lat, 99), 2),
            "rps": round(len(lat) / data["seconds"], 1),
            "client": "python (httpx)",
            "by_method": {
                m: {
                    "p50_ms": round(statistics.median(v) * 1000, 2),
                    "p99_ms": round(pct(v, 99) * 1000, 2),
                }
                for m, v in data["latencies"].items()
            },
        }
    return result


def _passes(lab: Lab) -> int:
    return int(lab.api("A", "GET", "/v1/status")["reconciler"]["passes"])
