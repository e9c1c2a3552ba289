"""The order of the phases of one reconciler pass. Each phase reads only what earlier phases
of this pass computed, or what memory names as the last pass's."""

from __future__ import annotations

from intercloud.reconciler import (
    addressing,
    connections,
    dataplane,
    flushes,
    links,
    members,
    moves,
    relays,
    status,
    targets,
    wants,
)
from intercloud.reconciler.memory import Memory
from intercloud.reconciler.parts import Parts, PassResult


def run(parts: Parts, memory: Memory, result: PassResult) -> None:
    # The first pass after a take-over (HA) puts traffic first: it waits for the IKE it began
    # and takes the link states its predecessor recorded; the next pass asks the peers.
    parts.rows.new_pass()  # nothing read before this pass is reused
    timed = result.timed
    taking_over, memory.taking_over = memory.taking_over, False
    with timed("ipsec"):
        ready = connections.phase(parts, memory, result, settle=taking_over)  # None: can't tell
    with timed("links"):
        link_states = links.phase(parts, memory, result, ready, recorded=taking_over)
        down = link_states.down
        flushes.on_link_change(parts, memory, link_states.changed)
    refresh = memory.refresh_due(parts.clock())
    # talk to peers: our targets' replicas and VNIs, then who relays what, then direct tunnels
    with timed("targets"):
        replicas = targets.phase(parts, memory, result, down, rerouted_last_pass=memory.rerouted)
    with timed("relays"):
        routed = relays.phase(parts, result, down)
        memory.rerouted = routed.rerouted
    with timed("members"):
        members.phase(parts, result, down, refresh)
    with timed("cloud"):
        made = addressing.phase(parts, memory, result, down)  # replicas in the cloud
    if ready is None:
        return  # without IPsec's state the data plane stays as it is
    # the desired host state, and the plan to it applied
    with timed("dataplane"):
        built = dataplane.converge(parts, result, wants.read(parts, ready, down, made, routed))
        parts.probes.track(built.tunnels(parts.cfg.dataplane.prefix))  # probe what stands
    with timed("moves"):
        moves.phase(parts, memory, result, built)  # VMs that moved between clouds: flushes
        if not result.errors:  # our data plane follows this pass's paths
            memory.relays_applied = built.relays(parts.cfg.dataplane.prefix)
            flushes.phase(parts, memory, result, routed, built, down)
    with timed("status"):
        realized = status.phase(parts, memory, result, built, replicas)  # write status
        members.report_phase(parts, result, down, realized)  # tell origins whom we reach
