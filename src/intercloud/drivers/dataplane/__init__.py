"""Data plane drivers: `linux` (bridge + VXLAN over netlink) and `fake` (in memory)."""

from __future__ import annotations

from intercloud.drivers.dataplane.base import Dataplane
from intercloud.errors import Invalid

DRIVERS = ("linux", "fake")


def load(kind: str, netns: str | None = None) -> Dataplane:
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
