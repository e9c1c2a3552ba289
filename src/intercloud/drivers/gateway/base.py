"""The gateway role contract. Both verbs are idempotent and quick (they run while the
leadership's deadline counts): what is slow (IKE) is left to the reconciler's next pass."""

from __future__ import annotations

from abc import ABC, abstractmethod


class GatewayDriver(ABC):
    @abstractmethod
    def take_over(self) -> None:
        """Hold the cloud's underlay address, announce it (gratuitous ARP), tunnel ports up."""

    @abstractmethod
    def step_down(self) -> None:
        """Tunnel ports down, the address released: this host forwards nothing any more."""

    @abstractmethod
    def holds_address(self) -> bool:
        """Whether this host holds the cloud's address now."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the driver holds (the agent is stopping)."""
