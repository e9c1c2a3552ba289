"""Data plane drivers: `linux` (bridge + VXLAN over netlink), `ovs` (br-cloud patched to br-int,
OpenFlow) and `fake` (in memory)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from intercloud.drivers.dataplane.base import Dataplane
from intercloud.errors import Invalid

if TYPE_CHECKING:
    from intercloud.config import DataplaneSection

DRIVERS = ("linux", "ovs", "fake")


def load(kind: str, netns: str | None = None, section: DataplaneSection | None = None) -> Dataplane:
    """The driver `kind`; `section` carries the ovs driver's settings (defaults if None)."""
    if kind == "ovs":
        from intercloud.config import DataplaneSection
        from intercloud.drivers.dataplane.ovs import OvsDataplane

        s = section or DataplaneSection()
        return OvsDataplane(
            s.ovs_db,
            s.ovs_rundir,
            integration_bridge=s.integration_bridge,
            cloud_bridge=s.cloud_bridge,
            tunnel_type=s.tunnel_type,
        )
    if kind == "linux":
        from intercloud.drivers.dataplane.linux import LinuxDataplane

        return LinuxDataplane(netns=netns)
    if kind == "fake":
        from intercloud.drivers.dataplane.fake import FakeDataplane

        return FakeDataplane()
    raise Invalid(
        f"dataplane.driver: unknown driver {kind!r} (valid: {', '.join(DRIVERS)})",
        field="dataplane.driver",
    )
