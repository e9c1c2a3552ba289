"""The lab: a whole federation of clouds in network namespaces on one host (demo, tests,
benchmarks). `Lab` builds and drives it; `intercloud lab ...` is its command line."""

from intercloud.lab.nsexec import LabError
from intercloud.lab.topology import Lab

__all__ = ["Lab", "LabError"]
