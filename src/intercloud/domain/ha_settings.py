"""The `[ha]` section of the agent's config (config.py reads it like the others): gateway high
availability, docs/ha.md. Off unless `enabled`; then every field is checked."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from intercloud.domain import validation
from intercloud.domain.leadership import Timing
from intercloud.errors import Invalid

_IFNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}", re.ASCII)


@dataclass
class HaSection:
    enabled: bool = False
    gateway: str = ""  # this gateway's name, unique among the cloud's gateways
    address: str = ""  # the cloud's underlay address with its prefix ("198.18.0.1/24")
    interface: str = ""  # the underlay interface peers reach that address through
    ttl_s: float = 1.0  # the lease's life after each renewal (database clock)
    renew_s: float = 0.2  # the active renews this often
    step_down_s: float = 0.6  # ... and stops forwarding this long after its last renewal

    def timing(self) -> Timing:
        return Timing(ttl_s=self.ttl_s, renew_s=self.renew_s, step_down_s=self.step_down_s)


def validate(ha: HaSection, database: str) -> None:
    if not ha.enabled:
        return
    if not database.startswith("postgresql"):
        raise Invalid(
            "config ha.enabled: gateway high availability needs the cloud's shared PostgreSQL "
            "in agent.database (postgresql+psycopg://...), not SQLite",
            field="agent.database",
        )
    validation.name(ha.gateway, "ha.gateway")
    if not isinstance(ha.interface, str) or not _IFNAME_RE.fullmatch(ha.interface):
        raise Invalid(
            "config ha.interface: must be a Linux interface name (1-15 letters, digits, "
            f"'.', '_' or '-'; got {validation.shown(ha.interface)})",
            field="ha.interface",
        )
    address_with_prefix(ha.address)
    ha.timing()  # checks the three durations and their order


def address_with_prefix(value: object) -> ipaddress.IPv4Interface:
    """The cloud's underlay address: an IPv4 host address with its prefix length."""
    iface = None
    if isinstance(value, str) and "/" in value:
        try:
            iface = ipaddress.IPv4Interface(value)
        except ValueError:  # AddressValueError and NetmaskValueError are ValueErrors
            iface = None
    net = iface.network if iface is not None else None
    if (
        iface is None
        or net is None
        or iface.ip.is_multicast
        or iface.ip.is_unspecified
        or (net.prefixlen < 31 and iface.ip in (net.network_address, net.broadcast_address))
    ):
        raise Invalid(
            "config ha.address: must be an IPv4 host address with its prefix length, e.g. "
            f"198.18.0.1/24 (got {validation.shown(value)})",
            field="ha.address",
        )
    return iface
