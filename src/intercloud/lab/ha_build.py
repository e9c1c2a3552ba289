"""The namespaces of a cloud with two gateways (lab up --ha), cloud <C> with index <i>:

    <lab>-wan    wan-<c> 198.18.<i>.1/24 ── wan0 ┐
    <lab>-gw-<c> the site: bridge `ul` (the underlay segment) with wan0, g1 and g2, its own
                 198.18.<i>.3/24 on `ul` (the cloud's PostgreSQL; the lab's API calls),
                 the tenant segments tn-net1, tn-net2 (the VMs join them) with g1-<net>, g2-<net>
    <lab>-gw-<c>1, <lab>-gw-<c>2   the gateways: eth0 198.18.<i>.11/.12 on `ul` (their own),
                 default route via .1; bridges tn-net1, tn-net2 each with a veth t-<net> to the
                 site's segment; an agent each ([ha], the shared database) and their charons

The cloud's address (198.18.<i>.2, what peers know) is held by whichever gateway is active
(drivers/gateway/linux.py). Both gateways' tenant bridges sit on the same segment, as two
gateway hosts on one provider network: only the active one's tunnel ports are up."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from intercloud.lab import namespaces

GATEWAYS = ("gw1", "gw2")
SITE_HOST = 3  # the site's own address on the underlay segment: 198.18.<i>.3


def subnet(index: int) -> str:
    return f"198.18.{index}"


def gateway_ns(site_ns: str, gateway: str) -> str:
    """`<lab>-gw-a` + gw1 -> `<lab>-gw-a1`."""
    return f"{site_ns}{gateway.removeprefix('gw')}"


def gateway_ip(index: int, gateway: str) -> str:
    return f"{subnet(index)}.{10 + int(gateway.removeprefix('gw'))}"


def wan_ip(index: int) -> str:
    """The WAN router's address on the cloud's segment: every host's default route."""
    return f"{subnet(index)}.1"


def site_ip(index: int) -> str:
    return f"{subnet(index)}.{SITE_HOST}"


def build_site(wan_ns: str, letter: str, index: int, site: str) -> dict[str, Any]:
    """The site namespace on the WAN router; the cloud's addresses (as underlay.build's)."""
    wan_if = f"wan-{letter.lower()}"
    namespaces.add_namespace(site)
    namespaces.add_bridge(site, "ul")
    namespaces.add_veth(wan_ns, wan_if, site, "wan0")
    namespaces.add_address(wan_ns, wan_if, f"{wan_ip(index)}/24")
    namespaces.set_up(wan_ns, wan_if)
    namespaces.set_up(site, "wan0", master="ul")
    namespaces.add_address(site, "ul", f"{site_ip(index)}/24")
    namespaces.add_default_route(site, wan_ip(index))
    cloud_ip = f"{subnet(index)}.2"
    return {"ip": cloud_ip, "local_ip": cloud_ip, "wan_ip": wan_ip(index), "wan_if": wan_if}


def build_gateway(site: str, index: int, gateway: str, networks: Sequence[str]) -> str:
    """A gateway namespace on the site's segments; its name."""
    ns = gateway_ns(site, gateway)
    port = f"g{gateway.removeprefix('gw')}"
    namespaces.add_namespace(ns)
    namespaces.add_veth(ns, "eth0", site, port)
    namespaces.set_up(site, port, master="ul")
    namespaces.add_address(ns, "eth0", f"{gateway_ip(index, gateway)}/24")
    namespaces.set_up(ns, "eth0")
    namespaces.add_default_route(ns, wan_ip(index))
    for net in networks:
        namespaces.add_bridge(ns, f"tn-{net}")
        namespaces.add_veth(ns, f"t-{net}", site, f"{port}-{net}")
        namespaces.set_up(ns, f"t-{net}", master=f"tn-{net}")
        namespaces.set_up(site, f"{port}-{net}", master=f"tn-{net}")
    return ns


def gateway_links(ns: str) -> list[str]:
    """The gateway host's links to the site (what `lab gateway fail --how cut` takes down)."""
    out = namespaces.ip("-o", "link", "show", ns=ns).stdout
    names = [line.split(": ")[1].split("@")[0] for line in out.splitlines() if ": " in line]
    return [n for n in names if n == "eth0" or n.startswith("t-")]
