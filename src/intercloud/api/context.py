"""What the routers need, handed in at start-up (no globals).

The API knows the drivers and the reconciler only by the few members it uses (protocols), so it
imports neither: the agent (agent.py) builds the real objects and hands them in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from intercloud.config import Config
from intercloud.domain.probe import PeerProbes, TunnelHealth
from intercloud.domain.proxy import Answer, Call
from intercloud.federation.peers import Federation
from intercloud.metrics import Metrics
from intercloud.service.diagnosis import Diagnoser
from intercloud.service.user import ProjectNetworks
from intercloud.store import Store


class ReconcilerStats(Protocol):
    def as_dict(self) -> dict[str, Any]: ...


class ReconcilerHandle(Protocol):
    """What the API asks of the reconciler."""

    @property
    def stats(self) -> ReconcilerStats: ...

    @property
    def ipsec_backend(self) -> str | None:
        """The backend the charon reported ("kernel", "kernel-libipsec"); None: not yet."""

    def trigger(self) -> None:
        """Pass again soon: the desired state changed."""

    def request_flush(self, replica_id: int) -> None:
        """Make the replica's tunnel ports forget what they learned, on the next pass."""

    def relays_applied(self, replica_id: int) -> list[list[str]] | None:
        """The pairs the data plane relays for the replica (None: not known yet)."""

    def recent_moves(self, expansion_id: int) -> list[dict[str, Any]]:
        """The expansion's recent moves of a VM between clouds (reconciler/moves.py)."""


class RunningReconciler(ReconcilerHandle, Protocol):
    """The reconciler in the context: the agent that owns the context also starts and stops it."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class HaHandle(Protocol):
    """Gateway HA (reconciler/ha.py): this gateway's role and the cloud's active gateway."""

    @property
    def gateway(self) -> str: ...

    def active(self) -> bool: ...

    def holder(self) -> str | None:
        """The active gateway's name as the database says (None: none or unknown)."""

    def status(self) -> dict[str, Any]: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Caller(Protocol):
    """Who called the admin or user API (the cloud driver's Principal)."""

    @property
    def admin(self) -> bool: ...

    @property
    def project(self) -> str | None: ...


class CloudAccess(ProjectNetworks, Protocol):
    """The cloud driver as the API uses it: who a token stands for, and a project's networks
    (for the user use cases)."""

    @property
    def authenticates_in_memory(self) -> bool:
        """True: authenticate() does no I/O, the API may call it on its event loop."""

    def authenticate(self, token: str) -> Caller | None: ...

    def forward(self, project: str, call: Call, limit: int, timeout: float) -> Answer:
        """A peer's tenant call made in this cloud as `project` (api/federation_proxy.py)."""

    def receive_port(self, network_id: str, mac: str, ip: str) -> dict[str, str]:
        """A VM's port arriving from another cloud (api/moves.py)."""


class DataplaneHandle(Protocol):
    @property
    def supported_tunnels(self) -> tuple[str, ...]: ...

    def close(self) -> None:
        """At the agent's shutdown."""


class IpsecHandle(Protocol):
    @property
    def refusal(self) -> str | None:
        """Why no link can be encrypted ("none" driver), or None: links may ask for it."""

    def close(self) -> None:
        """At the agent's shutdown."""


class ProbeHandle(Protocol):
    """The tunnel prober (drivers/probe) as the API and the agent use it."""

    @property
    def available(self) -> bool: ...

    @property
    def unavailable_reason(self) -> str | None: ...

    @property
    def period(self) -> float | None:
        """Seconds between two probes of one tunnel port."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def health(self, port: str) -> TunnelHealth | None:
        """What the probes of tunnel port `port` say (None: not probed)."""

    def peers(self) -> dict[str, PeerProbes]:
        """Per peer: its tunnels' verdicts, median RTT and mean loss."""

    def check(self, port: str, size: int, timeout: float) -> float | None:
        """One probe of `size` bytes into `port`: the RTT of the answer, None without one."""


class NoProbes:
    """No prober (an AppContext built by hand, as tests do): no figures."""

    available = False
    unavailable_reason: str | None = "no prober"
    period: float | None = None

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def health(self, port: str) -> TunnelHealth | None:
        return None

    def peers(self) -> dict[str, PeerProbes]:
        return {}

    def check(self, port: str, size: int, timeout: float) -> float | None:
        return None


@dataclass
class AppContext:
    cfg: Config
    store: Store
    cloud: CloudAccess
    dataplane: DataplaneHandle
    reconciler: RunningReconciler
    ipsec: IpsecHandle
    metrics: Metrics = field(default_factory=Metrics)  # this agent's own registry
    # the tenant API proxy's calls to peers (the reconciler's Federation: one pool per peer)
    federation: Federation | None = None
    probes: ProbeHandle = field(default_factory=NoProbes)  # the tunnel prober
    diagnoser: Diagnoser | None = None  # `intercloud diagnose` (None: not wired, a 503)
    ha: HaHandle | None = None  # gateway HA ([ha] enabled); None: the only gateway

    @property
    def encrypts(self) -> bool:
        """Whether links may ask for encryption (an IPsec driver is configured)."""
        return self.ipsec.refusal is None
