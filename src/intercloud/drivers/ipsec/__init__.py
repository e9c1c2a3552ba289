"""IPsec drivers: `strongswan` (charon over VICI; with `ipsec.lanes`, several charons: lanes.py),
`fake` (in memory) and `none` (noop.py: encrypts nothing)."""

from __future__ import annotations

from typing import Protocol

from intercloud.drivers.ipsec.base import Ipsec
from intercloud.drivers.registry import Registry


class Section(Protocol):
    """What the IPsec drivers read of their config section ([ipsec])."""

    driver: str
    vici_socket: str
    lanes: list[str]


class TunnelPort(Protocol):
    vxlan_port: int  # the lanes steer the tunnel traffic by its UDP port


class Settings(Protocol):
    @property
    def ipsec(self) -> Section: ...
    @property
    def dataplane(self) -> TunnelPort: ...


def _strongswan(cfg: Settings) -> Ipsec:
    from intercloud.drivers.ipsec import strongswan
    from intercloud.drivers.ipsec.cleartext_guard import CleartextGuard

    guard = CleartextGuard(cfg.dataplane.vxlan_port)
    lane0 = strongswan.StrongswanIpsec(cfg.ipsec.vici_socket, guard=guard)
    if not cfg.ipsec.lanes:
        return lane0
    from intercloud.drivers.ipsec.lanes import LanedIpsec, LaneSteering

    further = [strongswan.StrongswanIpsec(path) for path in cfg.ipsec.lanes]
    steering = LaneSteering(1 + len(further), cfg.dataplane.vxlan_port)
    return LanedIpsec([lane0, *further], steering)


def _fake(cfg: Settings) -> Ipsec:
    from intercloud.drivers.ipsec.fake import FakeIpsec

    return FakeIpsec()


def _none(cfg: Settings) -> Ipsec:
    from intercloud.drivers.ipsec.noop import NoopIpsec

    return NoopIpsec()


DRIVERS: Registry[Settings, Ipsec] = Registry(
    "ipsec.driver", {"strongswan": _strongswan, "fake": _fake, "none": _none}
)


def load(cfg: Settings) -> Ipsec:
    return DRIVERS.load(cfg.ipsec.driver, cfg)
