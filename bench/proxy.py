"""The tenant API proxy's overhead: Neutron's `GET /v2.0/ports` for the replicated project
`A.p1`, proxied (A's gateway -> A's agent -> signed federation call -> B's agent -> B's
Neutron) and direct (B's gateway -> B's Neutron, a token of a member of A.p1 from B's
Keystone), 200 calls each in 10 alternating rounds, one every 125 ms (under the proxy's
default rate limit) over a keep-alive connection, in the same run on the same OpenStack lab.
Figures: p50 and p99 of both, the overhead (proxied - direct) and the ratio; target: overhead
p50 < 20 ms.

    python -m bench.proxy               # its own two-cloud OpenStack lab (≈ 2 min), removed after
    python -m bench.proxy --lab NAME    # an OpenStack lab that is up, A and B peered
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
from typing import Any

from intercloud.lab import nsexec
from intercloud.lab.openstack.lab import OpenStackLab

PROGRAM = "bench.programs.sequential_get"
CALLS = 200
ROUNDS = 10
WARMUP = 3  # per round: the connection and the caches warm
INTERVAL = 0.125  # seconds between the starts of two calls


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ranked = sorted(values)
    return ranked[min(len(ranked) - 1, max(0, round(p / 100 * len(ranked) + 0.5) - 1))]


def _run(ns: str, cfg: dict[str, Any]) -> list[float]:
    proc = nsexec.run_program(ns, PROGRAM, input=json.dumps(cfg), timeout=300)
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"{PROGRAM} failed in {ns}: {proc.stderr.strip()[-500:]}") from None
    if out["status"] != [200]:
        raise RuntimeError(f"GET /v2.0/ports answered {out['status']} in {ns}")
    return out["latencies"]


def _expanded(lab: OpenStackLab) -> None:
    """net1 of A's p1 expanded into B (made if it is not)."""
    for e in lab.api("A", "GET", "/v1/expansions", token="p1"):
        if e["network"] == "net1" and e["status"] == "active":
            return
    exp = lab.api("A", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]}, token="p1")
    deadline = time.monotonic() + 90
    while lab.api("A", "GET", f"/v1/expansions/{exp['id']}", token="p1")["status"] != "active":
        if time.monotonic() > deadline:
            raise RuntimeError("the expansion of net1 into B did not become active")
        time.sleep(0.5)


def measure(lab: OpenStackLab, calls: int = CALLS) -> dict[str, Any]:
    _expanded(lab)
    lab.refresh_tokens()
    a, b = lab.cloud("A"), lab.cloud("B")
    svc_b = lab.services("B")
    user, password = f"bench{secrets.token_hex(3)}", secrets.token_hex(12)
    svc_b.create_user(user, password, "A.p1")  # a member of the replica, made in B
    direct_token = svc_b.token(user, password, "A.p1")
    # both paced alike, under the proxy's default rate limit (10 calls/s per project), and in
    # alternating rounds so that both see the same load of this shared machine
    common = {"n": calls // ROUNDS, "warmup": WARMUP, "interval": INTERVAL}
    proxied_cfg = {
        **common,
        "url": "https://127.0.0.1:8700/v1/proxy/B/network/v2.0/ports",
        "headers": {"X-Auth-Token": a.projects["p1"]},
        "cafile": a.ca,
    }
    direct_cfg = {
        **common,
        "url": f"{svc_b.neutron_url}v2.0/ports",
        "headers": {"X-Auth-Token": direct_token},
        "cafile": None,
    }
    proxied: list[float] = []
    direct: list[float] = []
    for _ in range(ROUNDS):
        proxied += _run(a.ns, proxied_cfg)
        direct += _run(b.ns, direct_cfg)
    ms = {k: [x * 1000 for x in v] for k, v in (("proxied", proxied), ("direct", direct))}
    out: dict[str, Any] = {"calls": calls}
    for k, v in ms.items():
        out[k] = {
            "p50_ms": round(pct(v, 50), 2),
            "p99_ms": round(pct(v, 99), 2),
            "mean_ms": round(statistics.fmean(v), 2),
        }
    for p in ("p50", "p99"):
        over = out["proxied"][f"{p}_ms"] - out["direct"][f"{p}_ms"]
        out[f"overhead_{p}_ms"] = round(over, 2)
        out[f"ratio_{p}"] = round(out["proxied"][f"{p}_ms"] / out["direct"][f"{p}_ms"], 2)
    out["target"] = "overhead p50 < 20 ms"
    out["met"] = out["overhead_p50_ms"] < 20
    return out


def section(bench: Any) -> None:
    """`python -m bench`'s proxy section (bench/run.py `Run`) and the figures it adds."""
    lab = OpenStackLab(bench.prefix + "p")
    bench.labs.append(lab)
    lab.up(2)
    lab.peer("A", "B")
    out = measure(lab, 40 if bench.mode.short else CALLS)
    bench.details["proxy"] = out
    direct = "direct to B's Neutron (a member of A.p1)"
    for p in ("p50", "p99"):
        bench.figs.add(
            f"proxy.{p}",
            "proxy",
            f"Neutron GET /v2.0/ports through the proxy, {p}",
            out["proxied"][f"{p}_ms"],
            "ms",
            baseline=(f"proxy.direct.{p}", direct, out["direct"][f"{p}_ms"]),
            better="lower",
        )
    bench.figs.add(
        "proxy.overhead_p50",
        "proxy",
        "the proxy's overhead, p50 (proxied - direct)",
        out["overhead_p50_ms"],
        "ms",
        baseline=("proxy.direct.p50", direct, out["direct"]["p50_ms"]),
        better="lower",
        target="value < 20",
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.proxy")
    ap.add_argument("--lab", help="an OpenStack lab that is up (A and B peered)")
    ap.add_argument("--calls", type=int, default=CALLS)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.proxy needs root (network namespaces)", file=sys.stderr)
        return 1
    if args.lab:
        result = measure(OpenStackLab(args.lab), args.calls)
    else:
        lab = OpenStackLab("bp" + secrets.token_hex(2))
        try:
            lab.up(2)
            lab.peer("A", "B")
            result = measure(lab, args.calls)
        finally:
            lab.down()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
