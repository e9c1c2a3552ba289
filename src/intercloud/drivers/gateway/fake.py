"""In-memory gateway driver: records what it was told (tests)."""

from __future__ import annotations

from intercloud.domain.remote_macs import RemoteMacs
from intercloud.drivers.gateway.base import GatewayDriver


class FakeGateway(GatewayDriver):
    def __init__(self) -> None:
        self.holding = False
        self.calls: list[str] = []
        self.learned: RemoteMacs = {}  # what remote_macs() answers
        self.bridges: set[str] = set()  # the bridges that exist here
        self.announced: list[RemoteMacs] = []

    def take_over(self) -> None:
        self.calls.append("take_over")
        self.holding = True

    def step_down(self) -> None:
        self.calls.append("step_down")
        self.holding = False

    def holds_address(self) -> bool:
        return self.holding

    def remote_macs(self) -> RemoteMacs:
        return {bridge: list(macs) for bridge, macs in self.learned.items()}

    def announce(self, macs: RemoteMacs) -> list[str]:
        here = {bridge: list(m) for bridge, m in macs.items() if bridge in self.bridges}
        self.announced.append(here)
        return sorted(here)
