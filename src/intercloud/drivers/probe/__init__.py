"""Tunnel probers (domain/probe.py): `linux` for the data plane of kernel VXLAN devices; every
other data plane gets the base Prober, which probes nothing and says so."""

from __future__ import annotations

from typing import Protocol

from intercloud.drivers.probe.base import NO_PROBES, Prober


class Section(Protocol):
    driver: str
    prefix: str


class AgentSection(Protocol):
    name: str


class Settings(Protocol):
    @property
    def agent(self) -> AgentSection: ...

    @property
    def dataplane(self) -> Section: ...


def load(cfg: Settings) -> Prober:
    """The prober for the configured data plane."""
    if cfg.dataplane.driver == "linux":
        from intercloud.drivers.probe.linux import LinuxProber

        return LinuxProber(cfg.dataplane.prefix, cfg.agent.name)
    return Prober()


__all__ = ["NO_PROBES", "Prober", "load"]
