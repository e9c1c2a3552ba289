"""The agent's heap: glibc malloc told to give big freed buffers back to the system.

By default glibc adapts: once a big buffer (an `ip -j` dump, a long list answered by the
API, a federation answer) is freed, it raises the size under which buffers come from its
heaps instead of their own mapping (up to 32 MB) and the free space a heap keeps before giving
it back (twice that). Each thread has its own heap, so the agent's API workers and its
reconciler each kept tens of MB free but resident: at its peak with 10,000 expansions the
creating agent's heaps held 201 MB, 151 MB of it free, most in the workers' heaps (malloc_info,
2026-12-07; docs/benchmarks.md).
Fixed thresholds keep buffers of 256 KiB and more in mappings of their own, unmapped when
freed, and give back a heap's free top above 1 MiB at once.

glibc only (Debian, Ubuntu, RHEL): elsewhere `tune` does nothing."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("intercloud.agent")

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)
MMAP_THRESHOLD = 256 * 1024
TRIM_THRESHOLD = 1024 * 1024


def tune() -> bool:
    """Fix glibc's thresholds (module docstring); whether it took them."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        log.info("heap: no glibc mallopt here; the allocator's defaults stay")
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
