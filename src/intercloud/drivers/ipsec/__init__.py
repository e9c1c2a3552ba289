"""IPsec drivers: `strongswan` (charon over VICI), `fake` (in memory), or none."""

from __future__ import annotations

from intercloud.config import Config
from intercloud.drivers.ipsec.base import Ipsec


def load(cfg: Config) -> Ipsec | None:
    if cfg.ipsec.driver == "strongswan":
        from intercloud.drivers.ipsec.strongswan import StrongswanIpsec

        return StrongswanIpsec(cfg.ipsec.vici_socket)
    if cfg.ipsec.driver == "fake":
        from intercloud.drivers.ipsec.fake import FakeIpsec

        return FakeIpsec()
    return None
