"""What the reconciler remembers from one pass to the next: one record. Everything else a
pass knows it reads again (store, drivers, peers) or computes within the pass."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from intercloud.reconciler.relays import Blocked

PEER_REFRESH = 60.0  # how often active expansions' replicas are re-checked with the peer
# at most this many re-checks per pass (each a call to the peer and a write): 10,000
# expansions re-checked every minute were 167 calls a second, the whole of two cores; past
# 1,200 expansions (a pass every 5 s) each is re-checked less often than every minute
CONFIRMS_PER_PASS = 100


@dataclass
class Memory:
    # links (links.py): (link id, peer URL) -> when its peer last answered a health check
    healthy_at: dict[tuple[int, str], float] = field(default_factory=dict)
    # peer -> since when its link is down (not disabled); its keys are last pass's broken links
    down_since: dict[str, float] = field(default_factory=dict)
    # peer -> when its link last came back up (status.py: its tunnels' probes resume after)
    back_at: dict[str, float] = field(default_factory=dict)
    # IPsec (connections.py): peer -> when its connection was last seen up (rekey grace)
    ipsec_up_at: dict[str, float] = field(default_factory=dict)
    ipsec_backend: str | None = None  # as the IPsec driver last said
    # this gateway took over (HA) and has not passed since (cycle.py: traffic first)
    taking_over: bool = False
    # peers (targets.py, members.py): when agreed state was last re-checked with them
    refreshed_at: float = -PEER_REFRESH
    confirmed_at: dict[int, float] = field(default_factory=dict)  # target id -> confirmed
    confirming: set[int] = field(default_factory=set)  # target ids re-checked this pass
    agree_from: int = 0  # the target id the next pass's agreements start with (round robin)
    unbatched: dict[str, float] = field(default_factory=dict)  # peer -> its confirmations failed
    # relays (relays.py): target id -> the member relaying us to it, as of the last pass
    rerouted: dict[int, Blocked] = field(default_factory=dict)
    # expansion id -> (paths, blocked pairs) our data plane last followed
    paths_applied: dict[int, tuple[list, frozenset]] = field(default_factory=dict)
    # replica id -> pairs our data plane relays, as of the last clean pass (None: none yet)
    relays_applied: dict[int, list[list[str]]] | None = None
    # flushes (flushes.py): replica ids whose learned MACs to forget; members to ask
    flush_requests: set[int] = field(default_factory=set)
    flush_pending: dict[int, set[str]] = field(default_factory=dict)  # expansion id -> names
    # the cloud (addressing.py): expansion uid -> (project, network, placeholders made)
    placeholders: dict[str, tuple] = field(default_factory=dict)
    # moves (moves.py): expansion id -> mac -> the clouds holding a port with it; recent moves
    mac_places: dict[int, dict[str, frozenset[str]]] = field(default_factory=dict)
    moves: dict[int, list[dict]] = field(default_factory=dict)

    def refresh_due(self, now: float) -> bool:
        """Whether this pass re-checks agreed state with peers (every PEER_REFRESH)."""
        if now - self.refreshed_at < PEER_REFRESH:
            return False
        self.refreshed_at = now
        return True

    def choose_confirms(self, target_ids: Iterable[int], now: float) -> None:
        """This pass's re-checks of active replicas with their peers: each one every
        PEER_REFRESH, the first time at a point spread over that window (after a restart with
        1,000 expansions, not 1,000 calls in the first pass and every minute after), and at
        most CONFIRMS_PER_PASS in a pass: those that waited longest (the rest stay due)."""
        due = []
        for target_id in target_ids:
            last = self.confirmed_at.get(target_id)
            if last is None:
                last = now - PEER_REFRESH * ((target_id * 0.6180339887) % 1.0)
                self.confirmed_at[target_id] = last
            if now - last >= PEER_REFRESH:
                due.append((last, target_id))
        self.confirming = {t for _, t in heapq.nsmallest(CONFIRMS_PER_PASS, due)}

    def confirm_due(self, target_id: int) -> bool:
        return target_id in self.confirming
