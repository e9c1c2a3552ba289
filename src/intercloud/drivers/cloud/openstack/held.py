"""Addresses kept out of a subnet's allocation pool while a VM moves away (live migration).

Between the moment the orchestrator deletes a VM's old port here and the pass that makes its
placeholder, nothing in Neutron would hold the address, and it would be free in this cloud's
pool (if the VM got it here). Neutron cannot swap a port for another with the same address in
one call, so the address leaves the pool *before* the old port goes: as soon as another cloud
holds the VM (its placeholder here is held back by the live port). Each address taken out is
recorded first as a tag of the subnet (`intercloud-held=<ip>`), so that it comes back to the
pool after the placeholder is made, even across a restart of the agent."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from typing import Any

from intercloud.domain import pools
from intercloud.drivers.cloud.openstack.sdk import Sdk
from intercloud.drivers.cloud.openstack.tags import pools_of

log = logging.getLogger("intercloud.cloud.openstack")

HELD_TAG = "intercloud-held="  # + an address this agent took out of the subnet's pool


def held_ips(subnet: Any) -> set[str]:
    """The addresses recorded as taken out of `subnet`'s pool (malformed tags ignored)."""
    out = set()
    for tag in subnet.tags or ():
        if tag.startswith(HELD_TAG):
            try:
                out.add(str(ipaddress.IPv4Address(tag[len(HELD_TAG) :])))
            except ValueError:
                continue
    return out


def without(ranges: Iterable[tuple[str, str]], ips: Iterable[str]) -> list[tuple[str, str]]:
    """`ranges` minus each of `ips`."""
    out = pools.normalize(ranges)
    for ip in sorted(ips):
        out = pools.subtract(out, (ip, ip))
    return out


def _in(ranges: Iterable[tuple[str, str]], ip: str) -> bool:
    return pools.size_of(without(ranges, [ip])) < pools.size_of(ranges)


class HeldAddresses:
    def __init__(self, sdk: Sdk) -> None:
        self.sdk = sdk

    def reserve(self, subnet: Any, ips: Iterable[str]) -> int:
        """Take `ips` (those in the pool) out of `subnet`'s pool: the tags first, then the
        pool. The number of addresses taken out."""
        current = list(pools_of(subnet.allocation_pools))
        new = sorted(ip for ip in set(ips) - held_ips(subnet) if _in(current, ip))
        if not new:
            return 0
        tags = sorted({*(subnet.tags or ()), *(HELD_TAG + ip for ip in new)})
        conn = self.sdk.conn()
        # openstacksdk updates `subnet` in place (its tags, then its pools)
        self.sdk.call("recording held addresses", lambda: conn.network.set_tags(subnet, tags))
        self._set(subnet, without(current, new))
        log.info("subnet %s: %s out of the pool while the VM moves", subnet.id, ", ".join(new))
        return len(new)

    def release(self, subnet: Any, keep: Iterable[str]) -> int:
        """Give back to `subnet`'s pool the addresses we took out, except `keep` (still held):
        the pool first, then the tags. The number of addresses given back."""
        back = sorted(held_ips(subnet) - set(keep))
        if not back:
            return 0
        merged = list(pools_of(subnet.allocation_pools))
        for ip in back:
            merged = pools.merge(merged, (ip, ip))
        self._set(subnet, merged)
        gone = {HELD_TAG + ip for ip in back}
        tags = sorted(t for t in subnet.tags or () if t not in gone)
        conn = self.sdk.conn()
        self.sdk.call("forgetting held addresses", lambda: conn.network.set_tags(subnet, tags))
        log.info("subnet %s: %s back in the pool", subnet.id, ", ".join(back))
        return len(back)

    def _set(self, subnet: Any, ranges: list[tuple[str, str]]) -> None:
        body = [{"start": a, "end": b} for a, b in ranges]
        conn = self.sdk.conn()
        self.sdk.call(
            "setting the subnet's allocation pools",
            lambda: conn.network.update_subnet(subnet, allocation_pools=body),
        )
