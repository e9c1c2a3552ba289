"""The tunnel prober's contract (domain/probe.py says what a probe is) and the prober of data
planes that cannot probe (their tunnel ports are not kernel devices: Open vSwitch's userspace
ports; the fake data plane)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from intercloud.domain.probe import PeerProbes, PeerTotals, TunnelHealth, Verdict


class Prober:
    """Probes the tunnel ports it is told to track and answers the peers' probes. This base
    probes nothing: every read answers "no figures"."""

    available: bool = False
    # why probes are not available (shown in the status); None when they are
    unavailable_reason: str | None = "the data plane has no kernel tunnel ports to probe"
    period: float | None = None  # seconds between two probes of one port

    def __init__(self) -> None:
        # called (from the prober's thread) when a port turns silent or answers again
        self.on_change: Callable[[], None] | None = None

    def start(self) -> None:
        """Open the socket and start probing (no error if it cannot: `available` says)."""

    def stop(self) -> None:
        """Stop within a second or two; the tracked ports are forgotten."""

    def track(self, ports: Mapping[str, str]) -> None:
        """Probe exactly these tunnel ports (name -> the peer it reaches) from now on."""

    def health(self, port: str) -> TunnelHealth | None:
        """What the probes of `port` say (None: not tracked, or no probes here)."""
        return None

    def verdict(self, port: str) -> Verdict | None:
        return None

    def check(self, port: str, size: int, timeout: float) -> float | None:
        """One probe frame whose Ethernet frame is `size` bytes into tunnel port `port`; the
        RTT in seconds of the peer agent's answer, or None if none came within `timeout`."""
        return None

    def peers(self) -> dict[str, PeerProbes]:
        """Per peer: its tunnels' verdicts, median RTT and mean loss."""
        return {}

    def totals(self) -> dict[str, PeerTotals]:
        """Per peer: every probe since start (copies, for the metrics)."""
        return {}


NO_PROBES = Prober()
