"""Split allocation pools (domain/pools.py)."""

from __future__ import annotations

import pytest

from intercloud.domain import pools

FULL = [("10.0.0.2", "10.0.0.254")]


def test_carve_takes_the_top_of_the_pool():
    assert pools.carve(FULL, [], 32) == ("10.0.0.223", "10.0.0.254")


def test_carve_steps_below_used_addresses():
    block = pools.carve(FULL, ["10.0.0.250", "10.0.0.230"], 16)
    assert block == ("10.0.0.234", "10.0.0.249")  # fits between the two
    assert pools.carve(FULL, ["10.0.0.250", "10.0.0.235"], 16) == ("10.0.0.219", "10.0.0.234")


def test_carve_uses_a_lower_range_when_the_top_one_is_too_small():
    ranges = [("10.0.0.10", "10.0.0.100"), ("10.0.0.200", "10.0.0.205")]
    assert pools.carve(ranges, [], 10) == ("10.0.0.91", "10.0.0.100")


def test_carve_none_when_full():
    assert pools.carve([("10.0.0.2", "10.0.0.9")], ["10.0.0.5"], 6) is None


def test_subtract_and_merge_round_trip():
    block = pools.carve(FULL, [], 32)
    rest = pools.subtract(FULL, block)
    assert rest == [("10.0.0.2", "10.0.0.222")]
    assert pools.size_of(rest) + 32 == pools.size_of(FULL)
    assert pools.merge(rest, block) == FULL


def test_subtract_from_the_middle_splits_the_range():
    rest = pools.subtract(FULL, ("10.0.0.100", "10.0.0.109"))
    assert rest == [("10.0.0.2", "10.0.0.99"), ("10.0.0.110", "10.0.0.254")]


def test_slices_of_several_peers_are_disjoint():
    left, blocks = FULL, []
    for _ in range(3):
        block = pools.carve(left, ["10.0.0.254"], 20)
        assert block is not None
        blocks.append(block)
        left = pools.subtract(left, block)
    assert pools.size_of(left) + 60 == pools.size_of(FULL)
    assert pools.size_of(pools.normalize(blocks)) == 60  # no overlap


def test_bad_range_refused():
    with pytest.raises(ValueError):
        pools.normalize([("10.0.0.9", "10.0.0.2")])
