"""A pass's calls to several peers, made at the same time: the pass waits for the slowest
peer, not for each in turn (confirmations, health checks)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

MAX_PEERS_AT_ONCE = 8  # threads of one pass's calls (one per peer)

Item = TypeVar("Item")
Answer = TypeVar("Answer")


def each(call: Callable[[Item], Answer], items: Sequence[Item]) -> list[Answer]:
    """call(item) for every item, the answers in `items`' order: in threads when there are
    several (so `call` touches nothing but its call), in the caller's thread for one."""
    if len(items) < 2:
        return [call(item) for item in items]
    with ThreadPoolExecutor(min(len(items), MAX_PEERS_AT_ONCE)) as pool:
        return list(pool.map(call, items))
