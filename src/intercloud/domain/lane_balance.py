"""Which lane a new tunnel flow goes to (pure; the nftables side is drivers/ipsec/lane_steering.py).

Why not the hash of the flow, as before: 10 flows hashed onto 2 lanes are split 5/5 only one
time in four (binomially), so one charon idles while the other is the bottleneck. Instead:

* every outer VXLAN flow (its UDP source port carries the inner flow's hash) is placed on a lane
  when it starts and pinned there (conntrack mark), so its packets never take two lanes at
  once and are never reordered;
* placement walks a table of `SLOTS` slots, one new flow per slot in turn, each slot naming a
  lane. With even weights consecutive flows alternate: 10 flows on 2 lanes are 5/5, always;
* a flow idle for `GAP_SECONDS` forgets its lane (its conntrack entry expires) and is placed
  again when it resumes: the idle gap is what makes a move safe (nothing of it is in flight);
* every tick (about a second) the agent feeds each lane's byte counter in; when the busiest
  lane carries more than `(1 + tolerance)` times the mean, the table gives the lighter lanes
  more slots, in proportion to their headroom, so new and resumed flows go there first. Back
  inside the tolerance, or with the link quiet, the weights are even again;
* a lane that is down gets no slot and its flows are placed again at their next packet
  (`Decision.down`): its share moves to the other lanes at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

SLOTS = 64  # placement table size: fine enough for 8 lanes, small enough to rewrite every tick
GAP_SECONDS = 2  # a flow idle this long may move (conntrack's timeout for the outer flow)


@dataclass(frozen=True)
class Decision:
    """The placement table (`slots[i]` = the lane of the i-th new flow, cyclically) and the
    lanes that are down (their flows are placed again)."""

    slots: tuple[int, ...]
    down: frozenset[int] = frozenset()


def even(lanes: int) -> Decision:
    """All lanes up, even shares: 0, 1, ..., N-1, 0, 1, ..."""
    return Decision(spread([1] * lanes))


def spread(weights: Sequence[int], size: int = SLOTS) -> tuple[int, ...]:
    """`size` slots shared by lane in proportion to `weights` (lanes with weight 0 get none),
    interleaved as evenly as possible (smooth weighted round robin), so that a burst of new
    flows is spread like the whole table."""
    if not any(w > 0 for w in weights):
        raise ValueError("lane balance: no lane to place flows on")
    total = sum(w for w in weights if w > 0)
    credit = [0] * len(weights)
    out = []
    for _ in range(size):
        for k, w in enumerate(weights):
            credit[k] += max(w, 0)
        best = max(range(len(weights)), key=lambda k: credit[k])
        credit[best] -= total
        out.append(best)
    return tuple(out)


@dataclass
class LaneBalance:
    """The rebalancer's memory: last counters, smoothed rates, the table in force."""

    lanes: int
    tolerance: float = 0.15  # imbalance that is left alone (no churn for noise)
    quiet_bytes_per_s: float = 1_000_000.0  # below this the link is idle: even weights
    smoothing: float = 0.5  # weight of the newest second in the smoothed rate
    rates: list[float] = field(default_factory=list)
    last: list[int] | None = None
    decision: Decision | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.lanes <= SLOTS:
            raise ValueError(f"lane balance: {self.lanes} lanes")
        self.rates = [0.0] * self.lanes
        self.decision = even(self.lanes)

    def update(self, counters: Sequence[int], up: Sequence[bool], seconds: float) -> Decision:
        """One tick: cumulative byte counters per lane (a counter that went back, e.g. a
        rebuilt table, counts from zero), which lanes are up (lane 0 always is: it is the
        link) and the seconds since the last tick."""
        if len(counters) != self.lanes or len(up) != self.lanes:
            raise ValueError("lane balance: one counter and one state per lane")
        self._smooth(counters, seconds)
        alive = [k == 0 or bool(up[k]) for k in range(self.lanes)]
        weights = self._weights(alive)
        down = frozenset(k for k in range(self.lanes) if not alive[k])
        self.decision = Decision(spread(weights), down)
        return self.decision

    def _smooth(self, counters: Sequence[int], seconds: float) -> None:
        last = self.last or list(counters)
        for k, now in enumerate(counters):
            delta = now - last[k] if now >= last[k] else now
            rate = delta / seconds if seconds > 0 else 0.0
            self.rates[k] = self.smoothing * rate + (1 - self.smoothing) * self.rates[k]
        self.last = list(counters)

    def _weights(self, alive: Sequence[bool]) -> list[int]:
        """Even over the lanes up, unless the busiest of them is beyond the tolerance: then
        each gets its headroom below twice the mean (at least 1 in 8 of an even share)."""
        rates = [r for r, a in zip(self.rates, alive, strict=True) if a]
        mean = sum(rates) / len(rates)
        if sum(rates) < self.quiet_bytes_per_s or max(rates) <= mean * (1 + self.tolerance):
            return [8 if a else 0 for a in alive]
        return [
            max(1, round(8 * (2 * mean - r) / mean)) if a else 0
            for r, a in zip(self.rates, alive, strict=True)
        ]
