"""How long the reconciler rests after a pass. A pass costs in proportion to the expansions the
agent holds (0.4 s at 3,000), so it is not the way to wait for something that one call can
tell: work still moving is retried soon, then less and less often while nothing changes; a
link that is down is watched with a health call of its own between passes (links.back), and
the next pass comes when it is back, not every half second while it is away; and a long pass
is not followed at once by another for every trigger that came meanwhile."""

from __future__ import annotations

from dataclasses import dataclass

from intercloud.reconciler.parts import PassResult

RETRY_PENDING = 0.3  # an expansion waits for its peer: it is usually a fraction of a second
# passes still unsettled that changed nothing, retried at RETRY_PENDING before backing off
# (doubling up to the interval: a peer that keeps refusing is not asked three times a second)
PENDING_FAST = 3
RETRY_LINK_DOWN = 2.0  # a link is down: ask its peer again, without hammering it
RETRY_CONNECTING = 0.3  # ... and sooner while it is new or just went down


# A pass this long or longer (an agent with thousands of expansions) is followed by a rest of
# its own length before a triggered pass, at most MAX_GAP: the triggers of that while (every
# call of a peer that expands into us triggers one) are served by one pass, and the agent
# spends at most half its time in passes. Shorter passes are followed at once.
GAP_FROM = 1.0
MAX_GAP = 5.0


@dataclass
class Pace:
    """The loop's count of passes in a row that were unsettled and changed nothing, and the
    rest a triggered pass waits for after the last one."""

    idle_unsettled: int = 0
    gap: float = 0.0

    def after(self, result: PassResult, interval: float, took: float = 0.0) -> float:
        """Seconds until the next pass (the last one took `took`), unless triggered or a
        link comes back."""
        idle = not result.settled and not result.changes
        self.idle_unsettled = self.idle_unsettled + 1 if idle else 0
        self.gap = min(took, MAX_GAP) if took >= GAP_FROM else 0.0
        return next_wait(interval, result, self.idle_unsettled)


def next_wait(interval: float, result: PassResult, idle_unsettled: int = 0) -> float:
    """Seconds until the next pass unless triggered: the interval, or RETRY_PENDING while work
    is moving (doubled for each idle unsettled pass past PENDING_FAST)."""
    if result.settled:
        return interval
    backoff = 2.0 ** max(0, idle_unsettled - PENDING_FAST)
    return min(interval, RETRY_PENDING * backoff)


def link_retry(coming_up: bool) -> float:
    """Seconds between two health calls to a link that is down (links.back)."""
    return RETRY_CONNECTING if coming_up else RETRY_LINK_DOWN
