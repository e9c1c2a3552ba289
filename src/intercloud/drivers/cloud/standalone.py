"""Standalone mode: projects, tokens and networks come from the agent's config file."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from intercloud.drivers.cloud.base import Cloud, Network, Principal

if TYPE_CHECKING:
    from intercloud.drivers.cloud import Settings


class StandaloneCloud(Cloud):
    authenticates_in_memory = True  # tokens from the config file

    def __init__(self, cfg: Settings) -> None:
        self._admin_token = cfg.agent.admin_token
        self._tokens = {p.token: p.name for p in cfg.projects}
        # (project, name) -> network, in the config's order: a pass looks each expansion's
        # network up, so a lookup is one dict access, not a scan
        self._networks = {
            (n.project, n.name): Network(n.name, n.project, n.cidr, n.interface)
            for n in cfg.networks
        }

    def authenticate(self, token: str) -> Principal | None:
        if hmac.compare_digest(token.encode(), self._admin_token.encode()):
            return Principal(admin=True)
        for known, project in self._tokens.items():
            if hmac.compare_digest(token.encode(), known.encode()):
                return Principal(admin=False, project=project)
        return None

    def networks(self, project: str) -> list[Network]:
        return [n for n in self._networks.values() if n.project == project]

    def network(self, project: str, name: str) -> Network | None:
        return self._networks.get((project, name))

    def add_network(self, net: Network) -> None:
        """A network that joins at run time (the config's are read at start)."""
        self._networks[(net.project, net.name)] = net

    def all_networks(self) -> list[Network]:
        return list(self._networks.values())
