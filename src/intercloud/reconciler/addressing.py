"""Addresses of expanded networks in clouds that hand them out (OpenStack): at the origin, each
peer's slice of the pool and what to tell it; at a peer, the replica to make in the cloud."""

from __future__ import annotations

import logging

from sqlalchemy import select

from intercloud.domain import pools
from intercloud.drivers.cloud.base import Cloud, ReplicaSpec
from intercloud.errors import Conflict
from intercloud.reconciler.sync import TargetWork
from intercloud.store import Store
from intercloud.store import models as m

log = logging.getLogger("intercloud.addressing")

# A peer's slice: a quarter of what the origin has left, at most this many addresses.
SLICE_MAX = 64


def for_target(store: Store, cloud: Cloud, work: TargetWork) -> dict | None:
    """What to tell the peer about the network's addresses (None: nothing, standalone).
    Carves the peer's slice on first need. Raises Conflict if the pool is too full to share."""
    net = cloud.network(work.project, work.network)
    if net is None:
        return None
    current = cloud.addressing(net)
    if current is None:
        return None
    slice_ = work.pool
    if slice_ is None:
        size = min(SLICE_MAX, pools.size_of(current.pools) // 4)
        block = pools.carve(current.pools, [ip for _, ip in current.ports], size) if size else None
        if block is None:
            raise Conflict(
                f"network {work.network!r}: its allocation pool has no free block of "
                f"{max(size, 1)} addresses to give {work.peer.name}"
            )
        # Shrink our pool before the peer may use the block: never both hand it out.
        cloud.set_pools(net, pools.subtract(current.pools, block))
        slice_ = (block,)
        with store.session() as s:
            t = s.get(m.Target, work.target_id)
            if t is not None:
                t.pool = [list(block)]
        log.info("expansion %s: %s may hand out %s-%s", work.expansion_uid, work.peer.name, *block)
    return {
        "gateway": net.gateway,
        "pools": [list(r) for r in slice_],
        "ports": sorted([mac, ip] for mac, ip in current.ports),
    }


def give_back(cloud: Cloud, work: TargetWork) -> None:
    """The peer's replica is gone: its slice returns to the origin's pool."""
    if not work.pool:
        return
    net = cloud.network(work.project, work.network)
    current = cloud.addressing(net) if net is not None else None
    if net is None or current is None:
        return
    merged = list(current.pools)
    for block in work.pool:
        merged = pools.merge(merged, block)
    cloud.set_pools(net, merged)


def replica_specs(store: Store) -> list[ReplicaSpec]:
    """The replicas this cloud must hold for its peers (only those told how to address)."""
    with store.session() as s:
        out = []
        for rep in s.scalars(select(m.Replica).order_by(m.Replica.id)):
            a = rep.addressing
            if a is None:
                continue
            agreement = rep.peer.agreement
            out.append(
                ReplicaSpec(
                    uid=rep.uid,
                    project=rep.project.name,
                    network=rep.network,
                    cidr=rep.cidr,
                    gateway=a.get("gateway"),
                    pools=tuple((p[0], p[1]) for p in a.get("pools", [])),
                    remote_ports=tuple((p[0], p[1]) for p in a.get("ports", [])),
                    max_networks=agreement.max_expansions_per_project if agreement else 1,
                )
            )
        return out
