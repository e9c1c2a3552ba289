"""What one reconciler pass works with (the agent's config, store, drivers, peers and clock)
and what it reports back (PassResult)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from intercloud.config import Config
from intercloud.domain import text
from intercloud.domain.probe import TunnelHealth, Verdict
from intercloud.drivers.cloud.base import Cloud
from intercloud.drivers.dataplane.base import Dataplane
from intercloud.drivers.ipsec.base import Ipsec
from intercloud.drivers.probe.base import NO_PROBES
from intercloud.federation.peers import Federation
from intercloud.metrics import Metrics
from intercloud.store import Store
from intercloud.store.rows import ExpansionRows

Clock = Callable[[], float]  # monotonic seconds (time.monotonic; tests pass their own)
LAST_ERROR_MAX = 2048


class TunnelProbes(Protocol):
    """What a pass asks of the tunnel prober (drivers/probe): which ports to probe, and what
    their probes say."""

    def track(self, ports: Mapping[str, str]) -> None:
        """Probe exactly these tunnel ports (name -> the peer it reaches)."""

    def verdict(self, port: str) -> Verdict | None:
        """None: not probed (not tracked, or no probes on this data plane)."""

    def health(self, port: str) -> TunnelHealth | None: ...


@dataclass(frozen=True)
class Parts:
    cfg: Config
    store: Store
    cloud: Cloud
    dataplane: Dataplane
    ipsec: Ipsec
    federation: Federation
    clock: Clock
    metrics: Metrics
    probes: TunnelProbes = NO_PROBES
    # every expansion and target as rows, read once per pass (store/rows.py)
    rows: ExpansionRows = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", ExpansionRows(self.store))

    @property
    def me(self) -> str:
        return self.cfg.agent.name

    @property
    def vnis(self) -> tuple[int, int]:
        """This agent's VNI range: what a peer may agree with us."""
        return self.cfg.dataplane.vni_min, self.cfg.dataplane.vni_max


@dataclass
class PassResult:
    changes: int = 0
    settled: bool = True
    links_down: bool = False
    errors: list[str] = field(default_factory=list)
    # what peers did wrong this pass (contained to their own objects; not the data plane's)
    peer_errors: list[str] = field(default_factory=list)
    # milliseconds each phase took (cycle.py's names), in order: where a slow pass went
    phases_ms: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Time the block as `phase` (also when it raises: the pass's failure is its last)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            spent = (time.perf_counter() - started) * 1000
            self.phases_ms[phase] = round(self.phases_ms.get(phase, 0.0) + spent, 1)

    def summary(self) -> str | None:
        said = list(dict.fromkeys(self.errors + self.peer_errors))  # each once, in order
        return text.clean("; ".join(said), LAST_ERROR_MAX) if said else None

    def failed(self, error: str) -> None:
        """Something of ours failed this pass: say it, and pass again soon."""
        self.errors.append(error)
        self.settled = False
