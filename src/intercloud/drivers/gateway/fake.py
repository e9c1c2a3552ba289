"""In-memory gateway driver: records what it was told (tests)."""

from __future__ import annotations

from intercloud.drivers.gateway.base import GatewayDriver


class FakeGateway(GatewayDriver):
    def __init__(self) -> None:
        self.holding = False
        self.calls: list[str] = []

    def take_over(self) -> None:
        self.calls.append("take_over")
        self.holding = True

    def step_down(self) -> None:
        self.calls.append("step_down")
        self.holding = False

    def holds_address(self) -> bool:
        return self.holding
