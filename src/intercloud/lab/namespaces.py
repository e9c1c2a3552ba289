"""Thin helpers over `ip` for the lab: namespaces, veths, bridges, addresses, routes.

Everything here acts inside named network namespaces only. Veths are created directly in
their namespaces (`ip -n NS link add X type veth peer name Y netns NS2`), so nothing ever
appears in the host's root namespace, even for an instant.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from intercloud.drivers.dataplane.linux import ipbatch
from intercloud.errors import DriverError
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


MANY_DEVICES = 64  # from this many, a namespace's devices are deleted together before it


def delete_namespace(ns: str) -> None:
    """Kill every process in the namespace, then delete it (its interfaces go with it)."""
    kill_pids(namespace_pids(ns))
    _delete_devices_together(ns)
    ip("netns", "del", ns, check=False)
    if exists(ns):
        raise LabError(f"could not delete namespace {ns}")


def _delete_devices_together(ns: str) -> None:
    """After `ip netns del` the kernel destroys the namespace's devices one by one in the
    background, holding rtnl and waiting for RCU readers each time: a scale lab's 10,000
    took minutes in which no namespace could be made (the next lab's `ip netns add` timed
    out). Deleted together first, they cost one wait (ipbatch.delete_together). Best effort:
    a device the kernel cannot delete this way fails the request, and the namespace's
    teardown deletes them as before."""
    shown = ip("-o", "link", "show", ns=ns, check=False).stdout
    names = [ln.split(":", 2)[1].strip().split("@")[0] for ln in shown.splitlines() if ":" in ln]
    names = [n for n in names if n != "lo"]
    if len(names) < MANY_DEVICES:
        return
    group = ipbatch.free_group(ns)
    if group is None:
        return
    try:
        lines = ipbatch.delete_together(names, group)
    except DriverError:  # a name not ours to write: left to the teardown
        return
    script = "".join(line + "\n" for line in lines)
    run(["ip", "-n", ns, "-force", "-batch", "-"], input=script, check=False, timeout=600)


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
