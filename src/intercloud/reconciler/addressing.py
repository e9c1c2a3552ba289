"""Addresses of expanded networks in clouds that hand them out (OpenStack): at the origin, each
peer's slice of the pool and what to tell it; at a peer, the replica to make in the cloud.
Its phase of a reconciler pass makes the objects in the cloud itself (`phase`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import select

from intercloud.domain import pools
from intercloud.drivers.cloud.base import Cloud, ReplicaSpec, ReplicaSync
from intercloud.errors import Conflict, IntercloudError, PeerError
from intercloud.federation import answers
from intercloud.federation.peers import Federation, PeerRef
from intercloud.reconciler.memory import Memory
from intercloud.reconciler.parts import Parts, PassResult
from intercloud.store import Store
from intercloud.store import models as m
from intercloud.store.rows import ExpansionRows

if TYPE_CHECKING:  # targets.py calls this module
    from intercloud.reconciler.targets import TargetWork

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
    # the peer's placeholders: our VMs and those of the network's other members
    ports = {(mac, ip) for mac, ip in current.ports}
    with store.session() as s:
        t = s.get(m.Target, work.target_id)
        for other in t.expansion.targets if t is not None else []:
            if other.id != work.target_id:
                ports |= {(mac, ip) for mac, ip in other.peer_ports or []}
    return {
        "gateway": net.gateway,
        "pools": [list(r) for r in slice_],
        "ports": sorted([mac, ip] for mac, ip in ports),
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


def report_ports(
    store: Store,
    federation: Federation,
    made: ReplicaSync,
    down: dict[str, str],
    errors: list[str] | None = None,
) -> bool:
    """A member: tell each origin the ports of its replica here when they changed, so the
    origin (and through it the other members) make placeholders for them. True if all told
    but those whose origin's link is down (the pass after it is back tells them)."""
    with store.session() as s:
        due = [
            (
                r.id,
                r.uid,
                r.cidr,
                PeerRef(r.peer.name, r.peer.federation_url, r.peer.key),
                made.local_ports[r.uid],
            )
            for r in s.scalars(select(m.Replica).order_by(m.Replica.id))
            if r.uid in made.local_ports
            and [list(p) for p in made.local_ports[r.uid]] != (r.ports_sent or [])
        ]
    ok = True
    for rep_id, uid, cidr, origin, ports in due:
        if origin.name in down:
            continue
        try:
            federation.peer(origin).report_ports(uid, ports, cidr)
        except PeerError as exc:
            why = answers.failed(errors, exc)
            log.info("replica %s: cannot tell %s its ports: %s", uid, origin.name, why)
            ok = False
            continue
        with store.session() as s:
            rep = s.get(m.Replica, rep_id)
            if rep is not None:
                rep.ports_sent = [list(p) for p in ports]
        log.info("replica %s: told %s of %d port(s)", uid, origin.name, len(ports))
    return ok


def origin_placeholders(rows: ExpansionRows, cloud: Cloud, applied: dict[str, tuple]) -> int:
    """The origin: placeholders in each expanded network for the ports its peers reported;
    none once the expansion is deleted. `applied` (expansion uid -> (project, network, ports)
    made) spares the cloud a call when nothing changed."""
    want = {
        e.uid: (
            e.project,
            e.network,
            ()
            if e.deleting
            else tuple(sorted({(p[0], p[1]) for t in e.targets for p in t.peer_ports or []})),
        )
        for e in rows.all()
    }
    for uid in set(applied) - set(want):  # gone: its placeholders go too
        want[uid] = (*applied[uid][:2], ())
    changes = 0
    for uid, (project, network, ports) in want.items():
        if applied.get(uid, (None, None, ()))[2] != ports:
            net = cloud.network(project, network)
            if net is not None:
                changes += cloud.sync_placeholders(net, list(ports))
                if cloud.placeholders_pending(net):  # held back by a VM that moved here
                    applied.pop(uid, None)
                    continue
        if ports:
            applied[uid] = (project, network, ports)
        else:
            applied.pop(uid, None)
    return changes


def phase(parts: Parts, memory: Memory, result: PassResult, down: dict[str, str]) -> ReplicaSync:
    """Objects in the cloud itself (OpenStack): the replicas we host (project, network,
    subnet, placeholders), their ports told to the origins, and the placeholders in our own
    expanded networks for the ports our peers told us."""
    try:
        made = parts.cloud.sync_replicas(replica_specs(parts.store))
    except IntercloudError as exc:
        result.failed(f"replicas: {exc.message}")
        return ReplicaSync()
    result.changes += made.changes
    if made.errors:
        result.settled = False
    try:
        if not report_ports(parts.store, parts.federation, made, down, result.peer_errors):
            result.settled = False
        result.changes += origin_placeholders(parts.rows, parts.cloud, memory.placeholders)
    except IntercloudError as exc:  # the data plane does not depend on these
        result.failed(f"placeholders: {exc.message}")
    return made
