"""The cloud driver contract: who the caller is, and which networks a project may expand."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """The caller of the admin or user API."""

    admin: bool
    project: str | None = None


@dataclass(frozen=True)
class Network:
    name: str
    project: str
    cidr: str
    interface: str  # the host interface or bridge that carries it locally


class Cloud(ABC):
    @abstractmethod
    def authenticate(self, token: str) -> Principal | None:
        """The principal a bearer token stands for, or None if the token is unknown."""

    @abstractmethod
    def networks(self, project: str) -> list[Network]:
        """The project's local networks that it may expand."""

    def network(self, project: str, name: str) -> Network | None:
        for net in self.networks(project):
            if net.name == name:
                return net
        return None

    def all_networks(self) -> list[Network]:
        """Every expandable network, whatever the project (for the reconciler)."""
        return []
