"""The agent's heap: glibc malloc told to give big freed buffers back to the system, and
Python's cyclic collector told to walk the objects less often and timed.

By default glibc adapts: once a big buffer (an `ip -j` dump, a long list answered by the
API, a federation answer) is freed, it raises the size under which buffers come from its
heaps instead of their own mapping (up to 32 MB) and the free space a heap keeps before giving
it back (twice that). Each thread has its own heap, so the agent's API workers and its
reconciler each kept tens of MB free but resident: at its peak with 10,000 expansions the
creating agent's heaps held 201 MB, 151 MB of it free, most in the workers' heaps (malloc_info,
2026-12-07; docs/benchmarks.md).
Fixed thresholds keep buffers of 256 KiB and more in mappings of their own, unmapped when
freed, and give back a heap's free top above 1 MiB at once.

glibc only (Debian, Ubuntu, RHEL): elsewhere `tune` does nothing.

The collector: CPython looks for cycles among the youngest objects after every 700 container
objects made (less those freed), and walks every long-lived object when enough of them were
made since the last full walk. A pass keeps its rows and plans until it ends, so each pass at
3,000 expansions made ~160 young and 1-2 full walks: ~90 ms of a ~400 ms converged pass, with
every thread stopped meanwhile (one process, fake data plane, `gc.callbacks`, 2026-12-07).
Young walks every 10,000 objects: ~15 ms. What start-up made is frozen out of the walks
(`freeze_startup`), and `COLLECTOR` times them for the status and the metrics."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import time
from typing import Any

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


YOUNG_THRESHOLD = 10_000  # objects made (less those freed) between young walks; CPython: 700


def collect_less() -> None:
    """Walk the young objects every YOUNG_THRESHOLD objects made (module docstring); the
    older generations' ratios stay as they are."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


def freeze_startup() -> None:
    """What start-up made (modules, FastAPI, SQLAlchemy, pydantic: most of the heap) lives as
    long as the agent: out of the full walks, which otherwise stopped every request for ~100 ms
    every 1-2 s under load. Objects freed later are still freed; only cycles among them are
    not looked for."""
    gc.collect()
    gc.freeze()


class CollectorTime:
    """Seconds the cyclic collector ran, per generation, once `start`ed (gc.callbacks: the
    collector runs in the thread whose allocation set it off, holding the interpreter, so
    every thread waits for it)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self.longest = [0.0, 0.0, 0.0]  # the longest single walk: how long every thread waited
        self._began = 0.0

    @property
    def total(self) -> float:
        return sum(self.seconds)

    @property
    def watching(self) -> bool:
        return self._on_collect in gc.callbacks

    def start(self) -> None:
        if not self.watching:
            gc.callbacks.append(self._on_collect)

    def stop(self) -> None:
        if self.watching:
            gc.callbacks.remove(self._on_collect)

    def _on_collect(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        took = time.perf_counter() - self._began
        generation = info["generation"]
        self.seconds[generation] += took
        self.collections[generation] += 1
        self.longest[generation] = max(self.longest[generation], took)


COLLECTOR = CollectorTime()  # the process's (the collector is process-wide)
