"""The gateway role contract. `take_over` and `step_down` are idempotent and quick (they run
while the leadership's deadline counts): what is slow (IKE) is left to the reconciler's next
pass. `remote_macs` and `announce` carry the tenant side across a take-over (docs/ha.md) and
run in threads of their own."""

from __future__ import annotations

from abc import ABC, abstractmethod

from intercloud.domain.remote_macs import RemoteMacs


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

    @abstractmethod
    def remote_macs(self) -> RemoteMacs:
        """The MACs each bridge with one of our tunnel ports learned on those ports (remote
        VMs), by bridge name; at most MACS_PER_BRIDGE each."""

    @abstractmethod
    def announce(self, macs: RemoteMacs) -> list[str]:
        """Tell the tenant side that these remote MACs are behind this gateway now: a RARP from
        each, out of every port of its bridge that is not a tunnel port, repeated for about a
        second (blocks meanwhile; stops if stepped down). Bridges that do not exist here are
        skipped; returns the bridges it announced on."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the driver holds (the agent is stopping)."""
