"""IPsec drivers: `strongswan` (charon over VICI; with `ipsec.lanes`, several charons: lanes.py),
`fake` (in memory), or none."""

from __future__ import annotations

from intercloud.config import Config
from intercloud.drivers.ipsec.base import Ipsec


def load(cfg: Config) -> Ipsec | None:
    if cfg.ipsec.driver == "strongswan":
        from intercloud.drivers.ipsec.strongswan import StrongswanIpsec

        lane0 = StrongswanIpsec(cfg.ipsec.vici_socket)
        if not cfg.ipsec.lanes:
            return lane0
        from intercloud.drivers.ipsec.lanes import LanedIpsec, LaneSteering

        further = [StrongswanIpsec(path) for path in cfg.ipsec.lanes]
        steering = LaneSteering(1 + len(further), cfg.dataplane.vxlan_port)
        return LanedIpsec([lane0, *further], steering)
    if cfg.ipsec.driver == "fake":
        from intercloud.drivers.ipsec.fake import FakeIpsec

        return FakeIpsec()
    return None
