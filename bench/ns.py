"""Namespaces the benchmark builds by hand (plain VXLAN, VPNaaS routers), all named
`<run prefix>-...`, so that one sweep at the end removes every one of them (and the labs',
which are named `<run prefix><letter>-...`).

Everything lives in namespaces: veths are created directly in their namespaces (through
`intercloud.lab.namespaces`), so nothing appears in the host's root namespace.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Sequence

from intercloud.lab import namespaces, nsexec
from intercloud.lab.nsexec import LabError

# The underlay of every hand-built topology mirrors the lab's: each gateway (or router) sits
# on its own /24 behind one WAN router namespace, 198.18.<i>.2 with the router at .1.


class Topology:
    """A set of namespaces and a WAN router, created under one name prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.made: list[str] = []

    def ns(self, short: str) -> str:
        return f"{self.prefix}-{short}"

    def add(self, short: str, forward: bool = False) -> str:
        name = self.ns(short)
        namespaces.add_namespace(name)
        self.made.append(name)
        if forward:
            namespaces.sysctl(name, "net.ipv4.ip_forward", "1")
        return name

    def wan(self, tag: str = "") -> str:
        return self.add(f"{tag}w", forward=True)

    def uplink(self, wan: str, gw: str, index: int) -> str:
        """gw's eth0 = 198.18.<index>.2/24 on the WAN router; returns that address."""
        wan_if = f"wan-{index}"
        namespaces.add_veth(wan, wan_if, gw, "eth0")
        namespaces.add_address(wan, wan_if, f"198.18.{index}.1/24")
        namespaces.set_up(wan, wan_if)
        namespaces.add_address(gw, "eth0", f"198.18.{index}.2/24")
        namespaces.set_up(gw, "eth0")
        namespaces.add_default_route(gw, f"198.18.{index}.1")
        return f"198.18.{index}.2"

    def vm(
        self,
        short: str,
        gw: str,
        gw_if: str,
        cidr: str,
        *,
        bridge: str | None = None,
        gw_cidr: str | None = None,
        via: str | None = None,
        mtu: int | None = None,
    ) -> str:
        """A "VM" namespace whose eth0 is joined to `gw` by a veth (`gw_if` on that side):
        either enslaved to `bridge` or addressed `gw_cidr` (a routed subnet, `via` its gateway)."""
        name = self.add(short)
        namespaces.add_veth(name, "eth0", gw, gw_if)
        namespaces.set_up(name, "eth0", mtu=mtu)
        namespaces.add_address(name, "eth0", cidr)
        if gw_cidr:
            namespaces.add_address(gw, gw_if, gw_cidr)
        namespaces.set_up(gw, gw_if, master=bridge, mtu=mtu)
        if via:
            namespaces.add_default_route(name, via)
        return name

    def teardown(self) -> None:
        for name in reversed(self.made):
            with contextlib.suppress(LabError):
                namespaces.delete_namespace(name)
        self.made.clear()


def ip(ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return namespaces.ip(*args, ns=ns, check=check)


def ip_batch(ns: str, lines: Sequence[str], timeout: float = 300.0) -> None:
    """`ip -n NS -batch -` (one netlink request per line, fast for thousands of devices)."""
    nsexec.run(["ip", "-n", ns, "-batch", "-"], input="\n".join(lines) + "\n", timeout=timeout)


def exec_run(
    ns: str, argv: Sequence[str], *, timeout: float = 120.0, check: bool = False
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        nsexec.exec_argv(ns, argv), capture_output=True, text=True, timeout=timeout, check=check
    )


def exec_popen(ns: str, argv: Sequence[str], **kw) -> subprocess.Popen[str]:
    kw.setdefault("stdout", subprocess.DEVNULL)
    kw.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen(nsexec.exec_argv(ns, argv), text=True, **kw)


def tx_packets(ns: str, ifname: str) -> int:
    """Packets sent by an interface (its kernel counter)."""
    out = ip(ns, "-s", "-j", "link", "show", "dev", ifname).stdout
    return int(json.loads(out)[0]["stats64"]["tx"]["packets"])


def sweep(prefix: str) -> list[str]:
    """Delete every namespace starting with `prefix` (killing what runs in them)."""
    gone = []
    for name in namespaces.list_namespaces(prefix):
        with contextlib.suppress(LabError):
            namespaces.delete_namespace(name)
            gone.append(name)
    return gone
