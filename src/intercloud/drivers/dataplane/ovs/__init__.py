"""The Open vSwitch data plane: br-cloud patched to br-int, with kernel tunnels (kernel.py, the
default) or OVS tunnel ports and OpenFlow (driver.py)."""

from intercloud.drivers.dataplane.ovs.driver import OvsDataplane
from intercloud.drivers.dataplane.ovs.kernel import OvsKernelDataplane

__all__ = ["OvsDataplane", "OvsKernelDataplane"]
