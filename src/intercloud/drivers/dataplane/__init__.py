"""Data plane drivers: `linux` (bridge + VXLAN over netlink), `ovs` (br-cloud patched to br-int;
per network a veth into kernel VXLAN, or OVS tunnel ports and OpenFlow) and `fake` (in memory)."""

from __future__ import annotations

from typing import Protocol

from intercloud.drivers.dataplane.base import Dataplane
from intercloud.drivers.registry import Registry


class Section(Protocol):
    """What the data plane drivers read of their config section ([dataplane])."""

    driver: str
    prefix: str
    # ovs: the node's Open vSwitch
    ovs_db: str
    ovs_rundir: str
    integration_bridge: str
    cloud_bridge: str
    tunnel_type: str
    tunnels: str  # ovs: "kernel" (veths into kernel VXLAN) or "ovs" (OVS tunnel ports)


class Settings(Protocol):
    @property
    def dataplane(self) -> Section: ...


def _linux(cfg: Settings) -> Dataplane:
    from intercloud.drivers.dataplane.linux import LinuxDataplane

    return LinuxDataplane(cfg.dataplane.prefix)


def _ovs(cfg: Settings) -> Dataplane:
    from intercloud.drivers.dataplane.ovs import OvsDataplane, OvsKernelDataplane

    s = cfg.dataplane
    if s.tunnels == "kernel":
        return OvsKernelDataplane(
            s.prefix,
            s.ovs_db,
            s.ovs_rundir,
            integration_bridge=s.integration_bridge,
            cloud_bridge=s.cloud_bridge,
        )
    return OvsDataplane(
        s.prefix,
        s.ovs_db,
        s.ovs_rundir,
        integration_bridge=s.integration_bridge,
        cloud_bridge=s.cloud_bridge,
        tunnel_type=s.tunnel_type,
    )


def _fake(cfg: Settings) -> Dataplane:
    from intercloud.drivers.dataplane.fake import FakeDataplane

    return FakeDataplane(cfg.dataplane.prefix)


DRIVERS: Registry[Settings, Dataplane] = Registry(
    "dataplane.driver", {"linux": _linux, "ovs": _ovs, "fake": _fake}
)


def load(cfg: Settings) -> Dataplane:
    """The configured driver, built for the configured prefix."""
    return DRIVERS.load(cfg.dataplane.driver, cfg)
