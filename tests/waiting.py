"""Waiting for a condition instead of sleeping a fixed time: the one helper every tier uses."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 30.0,
    interval: float = 0.3,
    what: str = "condition",
) -> Any:
    """Call `predicate` every `interval` seconds until it returns a true value, and return that
    value; after `timeout` seconds fail, naming `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
