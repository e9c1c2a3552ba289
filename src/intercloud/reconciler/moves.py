"""Moves phase of a reconciler pass, at the origin of expanded networks (clouds that hand out
addresses): where each VM's MAC is (our own ports, each member's reported ports); a MAC that
shows up in a cloud where it was not, having been elsewhere, moved (a live migration). Then
every member forgets where it learned that MAC: our tunnel ports of the network now, the
members when asked (so traffic waits neither for MAC ageing nor for the VM to speak), and the
move is logged and kept in the expansion's recent moves."""

from __future__ import annotations

import logging
import time

from intercloud.domain import owners
from intercloud.errors import IntercloudError
from intercloud.reconciler import dataplane
from intercloud.reconciler.dataplane import Built
from intercloud.reconciler.memory import Memory
from intercloud.reconciler.parts import Parts, PassResult
from intercloud.store import models as m

log = logging.getLogger("intercloud.moves")
KEPT = 10  # recent moves kept per expansion


def _where(parts: Parts) -> dict[int, tuple[str, dict[str, tuple[str, frozenset[str]]]]]:
    """Expansion id -> (uid, mac -> (ip, the clouds that hold a port with it)). Only networks
    whose addresses the cloud hands out (standalone: none, so a pass walks no port)."""
    out = {}
    for e in parts.rows.live():
        net = parts.cloud.network(e.project, e.network)
        current = parts.cloud.addressing(net) if net is not None else None
        if current is None:
            continue
        macs: dict[str, tuple[str, set[str]]] = {}
        holders: list[tuple[str, list]] = [(parts.me, list(current.ports))]
        holders += [(t.peer, [(p[0], p[1]) for p in t.peer_ports or []]) for t in e.targets]
        for cloud, ports in holders:
            for mac, ip in ports:
                macs.setdefault(mac.lower(), (ip, set()))[1].add(cloud)
        out[e.id] = (e.uid, {k: (ip, frozenset(c)) for k, (ip, c) in macs.items()})
    return out


def phase(parts: Parts, memory: Memory, result: PassResult, built: Built) -> dict[int, set[str]]:
    """Expansion id -> the MACs that moved in this pass (the flushes are asked here)."""
    try:
        now = _where(parts)
    except IntercloudError as exc:
        result.failed(f"moves: {exc.message}")
        return {}
    moved: dict[int, set[str]] = {}
    for exp_id, (uid, macs) in now.items():
        before = memory.mac_places.get(exp_id, {})
        for mac, (ip, clouds) in macs.items():
            was = before.get(mac, frozenset())
            if was and clouds - was:
                moved.setdefault(exp_id, set()).add(mac)
                _record(memory, exp_id, uid, mac, ip, was, clouds)
        memory.mac_places[exp_id] = {mac: clouds for mac, (_, clouds) in macs.items()}
    for gone in set(memory.mac_places) - set(now):
        del memory.mac_places[gone]
        memory.moves.pop(gone, None)
    dataplane.flush_networks(parts, built.desired, [owners.expansion(e).key for e in moved])
    for exp_id in moved:
        with parts.store.session() as s:
            exp = s.get(m.Expansion, exp_id)
            names = {t.peer.name for t in exp.targets} if exp is not None else set()
        memory.flush_pending[exp_id] = memory.flush_pending.get(exp_id, set()) | names
    return moved


def _record(
    memory: Memory,
    exp_id: int,
    uid: str,
    mac: str,
    ip: str,
    was: frozenset[str],
    clouds: frozenset[str],
) -> None:
    src, dst = ",".join(sorted(was)), ",".join(sorted(clouds - was))
    log.info("expansion %s: %s (%s) moved from %s to %s", uid, mac, ip, src, dst)
    kept = memory.moves.setdefault(exp_id, [])
    kept.append({"mac": mac, "ip": ip, "from": src, "to": dst, "at": round(time.time(), 3)})
    del kept[:-KEPT]
