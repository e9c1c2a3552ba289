"""Tunnel probers (domain/probe.py): `linux` for the data planes whose tunnel ports are kernel
VXLAN devices (the linux one, and ovs with `tunnels = "kernel"`); OVS's own userspace tunnels
get the base Prober, which probes nothing and says so."""

from __future__ import annotations

from typing import Protocol

from intercloud.drivers.probe.base import NO_PROBES, Prober


class Section(Protocol):
    driver: str
    prefix: str
    tunnels: str


class AgentSection(Protocol):
    name: str


class Settings(Protocol):
    @property
    def agent(self) -> AgentSection: ...

    @property
    def dataplane(self) -> Section: ...


def load(cfg: Settings) -> Prober:
    """The prober for the configured data plane."""
    dp = cfg.dataplane
    if dp.driver == "linux" or (dp.driver == "ovs" and dp.tunnels == "kernel"):
        from intercloud.drivers.probe.linux import LinuxProber

        return LinuxProber(cfg.dataplane.prefix, cfg.agent.name)
    return Prober()


__all__ = ["NO_PROBES", "Prober", "load"]
