"""Split allocation pools: every cloud of a network hands out addresses only from its own slice,
so no two clouds can give a VM the same address. The origin carves each peer's slice from the
top of its own pools (addresses none of its ports use) and keeps the rest. Pure functions on
IPv4 ranges given as (first, last) strings, inclusive."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Range = tuple[str, str]


def _ints(ranges: Iterable[Range]) -> list[tuple[int, int]]:
    out = []
    for first, last in ranges:
        a, b = int(ipaddress.IPv4Address(first)), int(ipaddress.IPv4Address(last))
        if a > b:
            raise ValueError(f"pool {first}-{last}: first is after last")
        out.append((a, b))
    return sorted(out)


def _strs(ranges: Iterable[tuple[int, int]]) -> list[Range]:
    return [(str(ipaddress.IPv4Address(a)), str(ipaddress.IPv4Address(b))) for a, b in ranges]


def normalize(ranges: Iterable[Range]) -> list[Range]:
    """Sorted, with overlapping or adjacent ranges merged."""
    merged: list[tuple[int, int]] = []
    for a, b in _ints(ranges):
        if merged and a <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return _strs(merged)


def subtract(ranges: Iterable[Range], block: Range) -> list[Range]:
    (x, y), out = _ints([block])[0], []
    for a, b in _ints(normalize(ranges)):
        if b < x or a > y:
            out.append((a, b))
            continue
        if a < x:
            out.append((a, x - 1))
        if b > y:
            out.append((y + 1, b))
    return _strs(out)


def merge(ranges: Iterable[Range], block: Range) -> list[Range]:
    return normalize([*ranges, block])


def carve(ranges: Iterable[Range], used: Iterable[str], size: int) -> Range | None:
    """The highest block of `size` consecutive addresses inside `ranges` that none of `used`
    takes, or None if there is none (the pool is too full to share)."""
    if size < 1:
        raise ValueError("size must be at least 1")
    taken = sorted(int(ipaddress.IPv4Address(u)) for u in used)
    for a, b in reversed(_ints(normalize(ranges))):
        top = b
        # walk down from the top, jumping below each used address in the way
        while top - size + 1 >= a:
            low = top - size + 1
            inside = [t for t in taken if low <= t <= top]
            if not inside:
                return _strs([(low, top)])[0]
            top = min(inside) - 1
    return None


def size_of(ranges: Iterable[Range]) -> int:
    return sum(b - a + 1 for a, b in _ints(normalize(ranges)))
