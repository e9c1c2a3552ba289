"""The `none` IPsec driver (ipsec.driver = none): this agent encrypts nothing. It keeps no
connection and says why an encrypted link cannot come up (`refusal`); the reconciler then
leaves such links down with that reason and reports no backend."""

from __future__ import annotations

from intercloud.drivers.ipsec.base import ConnectionSpec, ConnectionStatus, Ipsec
from intercloud.errors import DriverError

NO_DRIVER = "encrypted link but no IPsec driver"


class NoopIpsec(Ipsec):
    refusal = NO_DRIVER

    def backend(self) -> str:
        return "none"

    def ensure_connection(self, spec: ConnectionSpec, *, initiate: bool = True) -> bool:
        raise DriverError(f"{spec.name}: {NO_DRIVER} (ipsec.driver = none)")

    def remove_connection(self, name: str) -> bool:
        return False  # it never made one

    def connections(self) -> dict[str, ConnectionStatus]:
        return {}


NO_IPSEC = NoopIpsec()  # stateless: one serves every agent
