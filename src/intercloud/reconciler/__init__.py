"""Make the host match the desired state and write observed status back.

Runs at start-up, after every change (trigger) and periodically. Idempotent: on a converged
host a pass makes no driver call that changes anything.

    loop.py         the thread and the public surface (Reconciler)
    cycle.py        the order of the phases of one pass
    memory.py       what is remembered from one pass to the next
    parts.py        what a pass works with, and what it reports (PassResult)
    connections.py  IPsec connections, one per encrypted link
    links.py        peers' health and each link's state
    targets.py      the origin: replicas and VNIs agreed with peers
    relays.py       the origin: which member relays which pairs at layer 2
    members.py      a member: direct tunnels to the other members, reported to the origin
    addressing.py   objects in the cloud (OpenStack): replicas, address slices, placeholders
    wants.py        what each network wants of this host, from the store
    desired.py      the desired host state (pure)
    dataplane.py    the data-plane driver: observe, apply the plan, flush learned MACs
    flushes.py      forget learned MACs where paths changed
    status.py       targets' and replicas' status
"""

from intercloud.reconciler.loop import Reconciler, Stats
from intercloud.reconciler.parts import PassResult

__all__ = ["PassResult", "Reconciler", "Stats"]
