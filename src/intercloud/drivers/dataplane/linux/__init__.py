"""The Linux data plane: bridges, VXLAN devices and veth patches over rtnetlink (driver.py)."""

from intercloud.drivers.dataplane.linux.driver import BATCH_MIN_STEPS, LinuxDataplane

__all__ = ["BATCH_MIN_STEPS", "LinuxDataplane"]
