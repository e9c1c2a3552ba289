"""The lab's underlay: each cloud's gateway on the WAN router, directly or behind a NAT router.

    direct:  <lab>-wan  wan-<c> 198.18.<i>.1/24  ──  eth0 198.18.<i>.2/24  <lab>-gw-<c>
    NAT'd:   <lab>-wan  wan-<c> 198.18.<i>.1/24  ──  eth0 198.18.<i>.2/24  <lab>-nat-<c>
             <lab>-nat-<c>  eth1 198.19.<i>.1/24  ──  eth0 198.19.<i>.2/24  <lab>-gw-<c>

The NAT router masquerades the gateway (nftables, inside its own namespace) and forwards the
agent's API (TCP 8700) and IKE/NAT-T (UDP 500, 4500, and the further lanes' 4510/4511 ... 4570/4571)
to it, as a provider would publish them.
Peers know a NAT'd cloud by its public address (198.18.<i>.2); its gateway only knows its
private one (198.19.<i>.2), so IKE detects the NAT and uses UDP encapsulation.
"""

from __future__ import annotations

import subprocess
from typing import Any

from intercloud.lab import namespaces
from intercloud.lab.charon import MAX_LANES, lane_ports
from intercloud.lab.nsexec import LabError

FORWARDED = (
    ("tcp", 8700),
    ("udp", 500),
    ("udp", 4500),
    *(("udp", port) for k in range(1, MAX_LANES) for port in lane_ports(k)),
)


def _nft(ns: str, ruleset: str) -> None:
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "-f", "-"], input=ruleset, text=True, capture_output=True
    )
    if proc.returncode != 0:
        raise LabError(f"nft in {ns} failed: {proc.stderr.strip()}")


def nat_ruleset(private_ip: str) -> str:
    forwards = "\n".join(
        f'        iifname "eth0" {proto} dport {port} dnat to {private_ip}'
        for proto, port in FORWARDED
    )
    return f"""table ip intercloud_lab_nat {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
{forwards}
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "eth0" masquerade
    }}
}}
"""


def build(
    lab: str, wan_ns: str, letter: str, index: int, gw_ns: str, *, nat: bool
) -> dict[str, Any]:
    """Wire cloud `letter`'s gateway to the WAN; returns its addresses."""
    wan_if, wan_ip, public_ip = f"wan-{letter.lower()}", f"198.18.{index}.1", f"198.18.{index}.2"
    namespaces.add_namespace(gw_ns)
    edge = gw_ns
    if nat:
        edge = f"{lab}-nat-{letter.lower()}"
        namespaces.add_namespace(edge)
        namespaces.sysctl(edge, "net.ipv4.ip_forward", "1")
    namespaces.add_veth(wan_ns, wan_if, edge, "eth0")
    namespaces.add_address(wan_ns, wan_if, f"{wan_ip}/24")
    namespaces.set_up(wan_ns, wan_if)
    namespaces.add_address(edge, "eth0", f"{public_ip}/24")
    namespaces.set_up(edge, "eth0")
    namespaces.add_default_route(edge, wan_ip)
    local_ip = public_ip
    if nat:
        inner_ip, local_ip = f"198.19.{index}.1", f"198.19.{index}.2"
        namespaces.add_veth(edge, "eth1", gw_ns, "eth0")
        namespaces.add_address(edge, "eth1", f"{inner_ip}/24")
        namespaces.set_up(edge, "eth1")
        namespaces.add_address(gw_ns, "eth0", f"{local_ip}/24")
        namespaces.set_up(gw_ns, "eth0")
        namespaces.add_default_route(gw_ns, inner_ip)
        _nft(edge, nat_ruleset(local_ip))
    return {
        "ip": public_ip,
        "local_ip": local_ip,
        "wan_ip": wan_ip,
        "wan_if": wan_if,
        "nat_ns": edge if nat else None,
    }
