"""The prober's state of one tunnel port and of one check() probe, when a port is probed
next (domain/probe.py says why: steady while it answers, fast while suspect or new, at the
recovery rate once silent), and the agent's frame budget that all of them share."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

from intercloud.domain import probe as p


@dataclass(eq=False)
class Port:
    name: str
    peer: str
    window: p.Window
    totals: p.PeerTotals  # its peer's
    started: float  # monotonic
    leads: bool  # we probe it; else the peer does, and we learn from its next request
    template: bytearray | None = None  # its request frame (from its MAC), stamped per probe
    acked_seq: int = 0  # (leader) the last probe answered: the next request says so
    mac: bytes | None = None
    seq: int = 0
    silent: bool = False  # as last judged (a change wakes the reconciler)
    steady_at: float = 0.0  # (leader, monotonic) its next probe if the last one is answered


@dataclass(eq=False)
class Check:
    size: int
    sent_at: float
    done: threading.Event = field(default_factory=threading.Event)
    rtt: float | None = None


def next_look(port: Port, horizon: float) -> float | None:
    """When to look at `port` again without probing it now (its last probe was answered
    and the next is not due yet), or None: probe it now."""
    window = port.window
    answered = window.answered and not window.missed and port.seq not in window.pending
    return port.steady_at if answered and port.steady_at > horizon else None


def after_send(port: Port, now: float, period: float) -> float:
    """When to look at `port` after a probe: soon, to re-probe it at once if unanswered
    (suspect); a port that never answered or went silent is probed at its own rate."""
    window = port.window
    port.steady_at = now + period * random.uniform(0.9, 1.1)
    if window.answered == 0:
        fast = now - port.started < p.GRACE
        return now + (p.FAST_PERIOD if fast else period) * random.uniform(0.9, 1.1)
    if window.missed >= p.MISSES:
        return now + p.RECOVER_PERIOD * random.uniform(0.9, 1.1)
    return now + p.FAST_PERIOD


class Budget:
    """A token bucket of requests: `rate` a second, at most `burst` at once. Every probe the
    schedule sends takes one; when none is left the schedule waits (the ports due longest go
    first), so no state of the tunnels makes the agent send more than `rate` a second."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a probe budget needs rate > 0 and burst >= 1, got {rate}, {burst}")
        self.rate, self.burst = rate, burst
        self._tokens, self._at = burst, now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def ready_at(self, now: float) -> float:
        """When the next request may go (`now` if one may already)."""
        self._refill(now)
        return now if self._tokens >= 1 else now + (1 - self._tokens) / self.rate
