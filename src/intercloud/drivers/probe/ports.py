"""The prober's state of one tunnel port and of one check() probe, and when a port is probed
next (domain/probe.py says why: steady while it answers, fast while suspect or new, at the
recovery rate once silent)."""

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
