"""The Linux data-plane driver alone at N tunnel ports, against the kernel floor, same run.

    sudo python -m bench.driver_scale [N]      # default 3000; ~1 min at 3,000

In a scratch namespace with N tenant bridges (IPv6 off, as scale.py makes them), the driver
observes, plans and applies N isolated tunnel ports (one per bridge, MTU marked, 3 remotes),
as the reconciler's data-plane phase does from nothing; then two converged passes (observe and
plan, no step), and the pass of a new driver on the converged host (an agent's first pass after
a restart: nothing remembered, everything read). Each is broken down by what it waited for
(dumps, `ip -batch`, sysctl). The floor: the same devices by hand (scale.kernel_floor's
lines). What this leaves out is what the agent adds around the driver: its start, the other
phases, the other threads.

The converged passes read the kernel again: once N bridges got their port, the kernel announces
each bridge's new carrier state at 100 devices a second (its linkwatch work, for devices
without a lower device), so for N/100 s the driver hears of changes. They are timed all the
same: that is what the agent's passes in that window pay."""

from __future__ import annotations

import collections
import functools
import secrets
import sys
import time
from collections.abc import Callable
from typing import Any

from bench import ns as nsmod
from bench import scale
from intercloud.domain.hoststate import HostState, Vxlan
from intercloud.domain.plan import plan
from intercloud.drivers.dataplane.linux import LinuxDataplane, ipbatch, ipv6
from intercloud.drivers.dataplane.linux import driver as driver_mod
from intercloud.drivers.dataplane.linux import netlink as netlink_mod
from intercloud.lab import namespaces

Spent = collections.Counter[str]


def _timing(spent: Spent, calls: Spent) -> Callable[[], None]:
    """Wrap what the driver waits for; returns the undo."""
    wrapped: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, label: str) -> None:
        real = getattr(owner, name)

        @functools.wraps(real)
        def timed(*args: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return real(*args, **kw)
            finally:
                spent[label] += time.perf_counter() - t0
                calls[label] += 1

        wrapped.append((owner, name, real))
        setattr(owner, name, timed)

    wrap(netlink_mod._Netlink, "links", "interface dumps (ip -d -j link show)")
    wrap(netlink_mod._Netlink, "root_rates_by_name", "qdisc dump (tc -j)")
    wrap(ipbatch, "run", "ip -batch")
    wrap(ipv6, "disable", "IPv6 off (sysctl)")
    wrap(driver_mod.nft, "observe_mss_clamp", "nft list (clamps)")
    wrap(driver_mod.nft, "observe_no_forward", "nft list (relay filter)")

    def undo() -> None:
        for owner, name, real in reversed(wrapped):
            setattr(owner, name, real)

    return undo


PASSES = ("from_nothing", "converged", "converged_again", "restarted")


def _wanted(n: int) -> HostState:
    want = HostState()
    for i in range(n):
        remote = f"198.18.{2 + i % 3}.2"
        want.add(
            Vxlan(f"icv{i + 1}", i + 1, "198.18.1.2", remote, f"tn{i}", mtu=1450, isolated=True)
        )
    return want


def _pass(dp: LinuxDataplane, want: HostState, foreign: list[str]) -> dict[str, Any]:
    t0 = time.perf_counter()
    observed = dp.observe(foreign)
    t1 = time.perf_counter()
    steps = plan(want, observed)
    t2 = time.perf_counter()
    with dp.applying():
        errors = sum(exc is not None for _, exc in dp.apply(steps))
    t3 = time.perf_counter()
    return {
        "total_s": round(t3 - t0, 3),
        "observe_s": round(t1 - t0, 3),
        "plan_s": round(t2 - t1, 3),
        "apply_s": round(t3 - t2, 3),
        "steps": len(steps),
        "errors": errors,
    }


def _floor(ns: str, n: int) -> float:
    """The same tunnel ports by hand (scale.make_by_hand, the scale section's floor)."""
    t0 = time.perf_counter()
    scale.make_by_hand(ns, n)
    return round(time.perf_counter() - t0, 3)


def _delete_all(ns: str, names: list[str]) -> None:
    group = ipbatch.free_group(ns)
    if group is not None and names:
        nsmod.ip_batch(ns, ipbatch.delete_together(names, group))


def measure(n: int) -> dict[str, Any]:
    ns = f"bn{secrets.token_hex(2)}-drv"
    namespaces.add_namespace(ns)
    bridges = [f"tn{i}" for i in range(n)]
    tunnels = [f"icv{i + 1}" for i in range(n)]
    spent: Spent = collections.Counter()
    calls: Spent = collections.Counter()
    out: dict[str, Any] = {"n": n}
    try:
        scale._tenant_bridges(ns, n)  # tn0..tn<n-1>, as the scale section makes them
        undo = _timing(spent, calls)
        dp = LinuxDataplane("ic", netns=ns)
        try:
            want = _wanted(n)
            for name in PASSES:
                if name == "restarted":
                    dp.close()
                    dp = LinuxDataplane("ic", netns=ns)
                out[name] = _pass(dp, want, bridges)
                out[name]["waits_s"] = {k: round(v, 3) for k, v in spent.most_common()}
                out[name]["calls"] = dict(calls)
                spent.clear()
                calls.clear()
        finally:
            dp.close()
            undo()
        _delete_all(ns, tunnels)
        out["floor_s"] = _floor(ns, n)
        out["ratio_from_nothing"] = round(out["from_nothing"]["total_s"] / out["floor_s"], 2)
    finally:
        _delete_all(ns, tunnels + bridges)  # together: one by one holds rtnl for minutes
        namespaces.delete_namespace(ns)
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    out = measure(n)
    for name in PASSES:
        p = out[name]
        print(
            f"{name}: {p['total_s']} s (observe {p['observe_s']}, plan {p['plan_s']}, "
            f"apply {p['apply_s']}; {p['steps']} steps, {p['errors']} errors)"
        )
        for label, seconds in p["waits_s"].items():
            print(f"    {seconds:7.3f} s  x{p['calls'][label]:<3d} {label}")
    print(
        f"floor (same devices by hand): {out['floor_s']} s; from nothing / floor = "
        f"{out['ratio_from_nothing']}x"
    )


if __name__ == "__main__":
    main()
