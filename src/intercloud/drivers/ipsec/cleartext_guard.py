"""Tunnel traffic to an encrypted peer never leaves in clear, even when charon is gone.

With kernel-libipsec, what encrypts tunnel traffic is a route in table 220 (+ lane) into
charon's TUN device (charon_conf.py). That route goes with the device: when a charon dies
(killed, crashed, restarted by systemd) the lookup falls through to the main table and the
VXLAN packets to the peer leave over the underlay in clear. The agent cannot read IPsec then,
so it leaves the data plane as it is: the tunnel ports stay up for as long as charon is gone
(82 VXLAN packets in clear in 3 s, measured without this guard). Seen first in the HA lab: a
killed gateway's last ping frame left unencrypted.

So, per encrypted peer, one policy rule after every charon's (220..227) and before the main
table's (32766):

    300: to PEER/32 ipproto udp dport VXLAN_PORT blackhole  (protocol 73: ours)

While a charon's route exists its rule (220 + k) matches first and the packet is encrypted;
without one the packet is dropped. Only UDP to the tunnel port is dropped: IKE, ESP in UDP and
the federation's HTTPS to the peer are not. The rule stays when the agent stops or dies (the
kernel keeps it), so a gateway whose agent and charon both die fails closed. Checked on this
kernel: a VXLAN device's packets carry the UDP port into the rule lookup (tests/integration/
test_cleartext_guard.py).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from socket import AF_INET, AF_INET6
from typing import Any

from intercloud.drivers.nsexec import iproute_in
from intercloud.errors import DriverError

log = logging.getLogger("intercloud.ipsec")

GUARD_PRIO = 300  # after every lane's charon rule (220..227), before main (32766)
BLACKHOLE = 6  # FR_ACT_BLACKHOLE
# The rules' FRA_PROTOCOL, so an operator's own rule of the same shape is never taken for ours
# (unassigned in the kernel's list of route protocols, rtnetlink.h; `ip rule` shows the number).
RULE_PROTOCOL = 73
UDP = 17

Guarded = tuple[str, int]  # (peer's tunnel address, UDP port)


def wanted(destinations: Iterable[str], vxlan_port: int) -> set[Guarded]:
    """The (address, port) pairs to guard; an address that is not one (a peer's bad answer
    stored somewhere) is logged and left out, so the others are still guarded."""
    if type(vxlan_port) is not int or not 1 <= vxlan_port <= 65535:
        raise DriverError(f"cleartext guard: VXLAN port {vxlan_port!r} not in 1..65535")
    out: set[Guarded] = set()
    for raw in destinations:
        try:
            out.add((str(ipaddress.ip_address(raw)), vxlan_port))
        except ValueError:
            log.error("cleartext guard: %r is no IP address; not guarded", raw)
    return out


def _family(address: str) -> tuple[int, int]:
    version = ipaddress.ip_address(address).version
    return (AF_INET, 32) if version == 4 else (AF_INET6, 128)


def _rule(address: str, port: int) -> dict[str, Any]:
    family, length = _family(address)
    return {
        "family": family, "priority": GUARD_PRIO, "dst": address, "dst_len": length,
        "action": "FR_ACT_BLACKHOLE", "ip_proto": UDP, "dport_range": f"{port}:{port}",
        "protocol": RULE_PROTOCOL,
    }  # fmt: skip


class CleartextGuard:
    """The blackhole rules, made to match a set of peers over netlink (pyroute2)."""

    def __init__(self, vxlan_port: int, netns: str | None = None) -> None:
        wanted((), vxlan_port)  # checks the port
        self.vxlan_port, self.netns = vxlan_port, netns

    def _ipr(self) -> Any:
        try:
            return iproute_in(self.netns)
        except OSError as exc:
            raise DriverError(f"cleartext guard: netlink: {exc}") from exc

    def rules(self) -> set[Guarded]:
        """Our rules as they are: blackholes of UDP to one address and port at GUARD_PRIO."""
        with self._ipr() as ipr:
            return _listed(ipr)

    def ensure(self, destinations: Iterable[str]) -> bool:
        """Guard exactly `destinations` (peers' tunnel addresses). True if anything changed."""
        want = wanted(destinations, self.vxlan_port)
        with self._ipr() as ipr:  # one netlink socket lists and changes
            have = _listed(ipr)
            if want == have:
                return False
            try:
                for address, port in sorted(want - have):  # first: nothing unguarded between
                    ipr.rule("add", **_rule(address, port))
                    log.info("cleartext guard: UDP %d to %s: encrypted or dropped", port, address)
                for address, port in sorted(have - want):
                    ipr.rule("del", **_rule(address, port))
                    log.info("cleartext guard: UDP %d to %s no longer guarded", port, address)
            except OSError as exc:  # NetlinkError is an OSError
                raise DriverError(f"cleartext guard: {exc}") from exc
        return True


def _listed(ipr: Any) -> set[Guarded]:
    out: set[Guarded] = set()
    for family in (AF_INET, AF_INET6):
        for r in ipr.get_rules(family=family):
            found = _ours(r)
            if found is not None:
                out.add(found)
    return out


def _ours(rule: Any) -> Guarded | None:
    if rule.get("priority") != GUARD_PRIO or rule.get("protocol") != RULE_PROTOCOL:
        return None
    dst, ports = rule.get("dst"), str(rule.get("dport_range") or "")
    start, _, end = ports.partition(":")
    if rule["action"] != BLACKHOLE or rule.get("ip_proto") != UDP or not dst:
        return None
    if start != end or not start.isdigit():
        return None
    length = 32 if rule["family"] == AF_INET else 128
    return (str(dst), int(start)) if rule["dst_len"] == length else None
