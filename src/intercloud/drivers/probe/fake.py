"""A prober in memory for tests: the tracked ports are recorded, and each port's health is
what the test sets (`answer`, `silence`)."""

from __future__ import annotations

from collections.abc import Mapping

from intercloud.domain import probe as p
from intercloud.drivers.probe.base import Prober


class FakeProber(Prober):
    available = True
    unavailable_reason = None
    period = p.PERIOD

    def __init__(self, now: float = 1_000_000.0) -> None:
        super().__init__()
        self.now = now  # epoch seconds the verdicts are judged at
        self.tracked: dict[str, str] = {}
        self._health: dict[str, p.TunnelHealth] = {}
        self.checks: list[tuple[str, int, float]] = []

    def track(self, ports: Mapping[str, str]) -> None:
        self.tracked = dict(ports)
        for name in ports:
            self._health.setdefault(name, p.TunnelHealth(self.now, None, None, 0.0, 0, 0))

    def answer(self, port: str, rtt: float = 0.001, loss: float = 0.0) -> None:
        """`port` answered its last probe just now."""
        old = self._health.get(port) or p.TunnelHealth(self.now, None, None, 0.0, 0, 0)
        self._health[port] = p.TunnelHealth(
            old.tracked_since, self.now, rtt, loss, old.sent + 1, old.answered + 1
        )

    def silence(self, port: str, since: float) -> None:
        """`port` answered last at `since` (epoch seconds) and never after: MISSES probes
        lost in a row since."""
        old = self._health.get(port) or p.TunnelHealth(since - 1, None, None, 0.0, 0, 0)
        self._health[port] = p.TunnelHealth(
            old.tracked_since,
            since,
            old.rtt_seconds or 0.001,
            1.0,
            old.sent + p.MISSES,
            old.answered,
            missed=p.MISSES,
        )

    def health(self, port: str) -> p.TunnelHealth | None:
        return self._health.get(port) if port in self.tracked else None

    def verdict(self, port: str) -> p.Verdict | None:
        health = self.health(port)
        return None if health is None else p.verdict(health, self.now)

    def check(self, port: str, size: int, timeout: float) -> float | None:
        self.checks.append((port, size, timeout))
        health = self.health(port)
        return health.rtt_seconds if health is not None else None

    def peers(self) -> dict[str, p.PeerProbes]:
        by_peer: dict[str, list[p.TunnelHealth]] = {}
        for name, peer in self.tracked.items():
            by_peer.setdefault(peer, []).append(self._health[name])
        return {peer: p.summarize(peer, hs, self.now) for peer, hs in sorted(by_peer.items())}
