"""Gateway role drivers (gateway HA, docs/ha.md): what taking over and stepping down do on the
host. `linux` (the cloud's address on a device the agent's process owns, gratuitous ARP, tunnel
ports up/down; `tenant`: the remote MACs its bridges learned, announced by RARP on the tenant
side after a take-over) and `fake` (in memory, for tests)."""

from intercloud.drivers.gateway.base import GatewayDriver

__all__ = ["GatewayDriver"]
