"""Data-plane phase of a reconciler pass: the desired host state (desired.build) against what
the data-plane driver observes, the plan between them applied step by step. Every call to the
data-plane driver in a pass is made here."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from intercloud.domain import naming
from intercloud.domain import plan as planner
from intercloud.domain.owners import Kind, Owner
from intercloud.reconciler.desired import DesiredResult, NetworkWant, build
from intercloud.reconciler.parts import Parts, PassResult
from intercloud.reconciler.wants import Wants

log = logging.getLogger("intercloud.reconciler")


@dataclass(frozen=True)
class Built:
    desired: DesiredResult
    networks: list[NetworkWant]
    broken: set[str]  # interfaces the plan still wants after this pass: could not be made

    def relays(self, prefix: str) -> dict[int, list[list[str]]]:
        """Replica id -> the pairs our data plane relays for it (its bridge was built)."""
        out = {}
        for net in self.networks:
            owner = Owner.parse(net.key)
            bridge = naming.bridge(prefix, net.key)
            if owner.kind is Kind.REPLICA and bridge in self.desired.state.bridges:
                out[owner.id] = [list(p) for p in sorted(net.forward)]
        return out

    def tunnels(self, prefix: str) -> dict[str, str]:
        """The tunnel ports built and standing after this pass: name -> the peer it reaches."""
        out = {}
        for net in self.networks:
            for port in net.ports:
                needs = self.desired.needs.get(port.owner)
                if port.vni is not None and needs and not needs & self.broken:
                    out[naming.vxlan(prefix, port.vni)] = port.peer
        return out


def converge(parts: Parts, result: PassResult, wants: Wants) -> Built:
    dataplane, prefix = parts.dataplane, parts.cfg.dataplane.prefix
    # every network's local side too: its kind decides how it joins the bridge
    local = {n.local_interface for n in wants.networks if n.local_interface}
    foreign = sorted(set(wants.foreign) | local)
    observed = dataplane.observe(foreign)
    desired = build(
        prefix, parts.cfg.dataplane.vxlan_port, wants.networks, wants.links, observed.kinds
    )
    errors_before = len(result.errors)
    with dataplane.applying():
        for step, exc in dataplane.apply(planner.plan(desired.state, observed)):
            if exc is None:
                log.info("dataplane: %s", step.describe())
                result.changes += 1
            else:
                log.error("dataplane: %s failed: %s", step.describe(), exc.message)
                result.errors.append(exc.message)
    # Every step done: the plan holds (what changed since is the next pass's). After a
    # failure, what is still missing is observed: its owners are not reported as built.
    failed = len(result.errors) > errors_before
    remaining = planner.plan(desired.state, dataplane.observe(foreign)) if failed else []
    return Built(desired, wants.networks, {_step_name(st) for st in remaining})


def flush_networks(parts: Parts, desired: DesiredResult, keys: Iterable[str]) -> None:
    """Forget the MACs learned by the ports of these networks' bridges (`keys`: their owners'
    keys): their tunnel ports and local sides (a VM that moved away was learned there). On
    the operator's own bridge the local side is all of its other ports: that bridge forgets
    what it learned as a whole. One driver call for all (a link that comes back flushes
    every network over it); one log line per network."""
    state = desired.state
    by_master: dict[str, list[str]] = {}
    for name, master in (
        *((vx.name, vx.master) for vx in state.vxlans.values()),
        *((p.name, p.master) for p in state.patches.values()),
        *((a.interface, a.master) for a in state.attachments.values()),
    ):
        by_master.setdefault(master, []).append(name)
    flushed: list[str] = []
    for key in sorted(set(keys)):
        bridge = desired.masters.get(key) or naming.bridge(parts.cfg.dataplane.prefix, key)
        ports = by_master.get(bridge, [])
        if bridge not in state.bridges and ports:
            ports = [*ports, bridge]
        if ports:
            log.info("dataplane: flush_learned %s", ", ".join(sorted(ports)))
            flushed += ports
    if flushed:
        parts.dataplane.flush_learned(flushed)


def _step_name(step: planner.Step) -> str:
    obj = step.obj
    if isinstance(obj, str):
        return obj
    return str(getattr(obj, "name", None) or getattr(obj, "interface", ""))
