"""Thin helpers over `ip` for the lab: namespaces, veths, bridges, addresses, routes.

Everything here acts inside named network namespaces only. Veths are created directly in
their namespaces (`ip -n NS link add X type veth peer name Y netns NS2`), so nothing ever
appears in the host's root namespace, even for an instant.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from intercloud.lab.nsexec import LabError, run
from intercloud.lab.processes import kill_pids


def ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip"] + (["-n", ns] if ns else []) + list(args)
    return run(argv, check=check)


# --- namespaces --------------------------------------------------------------------------------


def list_namespaces(prefix: str = "") -> list[str]:
    out = run(["ip", "netns", "list"]).stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return sorted(n for n in names if n.startswith(prefix))


def exists(ns: str) -> bool:
    return Path("/run/netns", ns).exists()


def add_namespace(ns: str) -> None:
    ip("netns", "add", ns)
    ip("link", "set", "lo", "up", ns=ns)


def namespace_pids(ns: str) -> list[int]:
    proc = run(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def delete_namespace(ns: str) -> None:
    """Kill every process in the namespace, then delete it (its interfaces go with it)."""
    kill_pids(namespace_pids(ns))
    ip("netns", "del", ns, check=False)
    if exists(ns):
        raise LabError(f"could not delete namespace {ns}")


def sysctl(ns: str, key: str, value: str) -> None:
    run(["ip", "netns", "exec", ns, "sysctl", "-qw", f"{key}={value}"])


# --- links -------------------------------------------------------------------------------------


def add_veth(ns1: str, name1: str, ns2: str, name2: str) -> None:
    """A veth pair with one end in each namespace, both ends down."""
    ip("link", "add", name1, "type", "veth", "peer", "name", name2, "netns", ns2, ns=ns1)


def add_bridge(ns: str, name: str) -> None:
    ip("link", "add", name, "type", "bridge", ns=ns)
    ip("link", "set", name, "up", ns=ns)


def set_up(
    ns: str,
    ifname: str,
    *,
    master: str | None = None,
    mtu: int | None = None,
    mac: str | None = None,
) -> None:
    if mac:
        ip("link", "set", ifname, "address", mac, ns=ns)
    if mtu:
        ip("link", "set", ifname, "mtu", str(mtu), ns=ns)
    if master:
        ip("link", "set", ifname, "master", master, ns=ns)
    ip("link", "set", ifname, "up", ns=ns)


def add_address(ns: str, ifname: str, cidr: str) -> None:
    ip("addr", "add", cidr, "dev", ifname, ns=ns)


def add_default_route(ns: str, via: str) -> None:
    ip("route", "add", "default", "via", via, ns=ns)


def link_exists(ns: str, ifname: str) -> bool:
    return ip("link", "show", "dev", ifname, ns=ns, check=False).returncode == 0
