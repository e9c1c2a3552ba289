"""The Open vSwitch data plane: br-cloud patched to br-int, OpenFlow (driver.py)."""

from intercloud.drivers.dataplane.ovs.driver import OvsDataplane

__all__ = ["OvsDataplane"]
