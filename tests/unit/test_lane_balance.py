"""Balanced lanes without a kernel: the placement decisions from fake counter sequences, and
the rebalancer's tick over a steering that records what it would put into nftables."""

from __future__ import annotations

import random

import pytest

from intercloud.domain import lane_balance
from intercloud.domain.lane_balance import Decision, LaneBalance, spread
from intercloud.drivers.ipsec.lane_steering import LaneBalancer, LaneSteering

MB = 1_000_000


def shares(slots: tuple[int, ...], lanes: int) -> list[int]:
    return [slots.count(k) for k in range(lanes)]


def test_even_placement_alternates_so_any_burst_of_flows_is_split_evenly():
    slots = lane_balance.even(2).slots
    assert len(slots) == lane_balance.SLOTS
    for start in range(len(slots)):  # wherever the flow counter stands
        for n in (10, 16, 64):
            burst = [slots[(start + i) % len(slots)] for i in range(n)]
            assert shares(tuple(burst), 2) == [n // 2, n // 2]
    three = lane_balance.even(3).slots
    assert three[:6] == (0, 1, 2, 0, 1, 2)


def test_hashing_ten_flows_onto_two_lanes_is_uneven_most_of_the_time():
    # what the placement replaces: 10 flows hashed (uniformly) onto 2 lanes
    rng = random.Random(7)
    trials = [sum(rng.randrange(2) for _ in range(10)) for _ in range(10_000)]
    assert sum(t == 5 for t in trials) / len(trials) < 0.3


def test_weights_are_interleaved_in_proportion():
    slots = spread([1, 3])
    assert shares(slots, 2) == [16, 48]
    assert max(len(run) for run in "".join(map(str, slots)).split("0")) == 3  # no long runs
    assert shares(spread([8, 0, 8]), 3) == [32, 0, 32]
    with pytest.raises(ValueError, match="no lane"):
        spread([0, 0])


def feed(balance: LaneBalance, steps: list[list[int]], up=None) -> Decision:
    """Per-second byte counts per lane, accumulated into counters as nft would."""
    totals = list(balance.last or [0] * balance.lanes)
    decision = balance.decision
    for step in steps:
        totals = [t + s for t, s in zip(totals, step, strict=True)]
        decision = balance.update(totals, up or [True] * balance.lanes, 1.0)
    assert decision is not None
    return decision


def test_uneven_lanes_send_new_flows_to_the_lighter_one_first():
    b = LaneBalance(2)
    d = feed(b, [[30 * MB, 10 * MB]] * 4)
    lane0, lane1 = shares(d.slots, 2)
    assert lane1 > 2 * lane0 and lane0 > 0  # lane 1 has the headroom, lane 0 still gets some
    assert d.down == frozenset()


def test_balanced_or_quiet_lanes_keep_even_shares():
    b = LaneBalance(2)
    assert feed(b, [[20 * MB, 19 * MB]] * 4) == lane_balance.even(2)  # inside the tolerance
    feed(b, [[30 * MB, 5 * MB]] * 4)
    assert b.decision != lane_balance.even(2)
    assert feed(b, [[0, 0]] * 6) == lane_balance.even(2)  # the link went quiet: even again
    assert feed(b, [[200_000, 0]] * 4) == lane_balance.even(2)  # a trickle is not a load


def test_a_lane_down_gets_no_flows_and_its_flows_are_placed_again():
    b = LaneBalance(3)
    d = feed(b, [[10 * MB, 10 * MB, 10 * MB]], up=[True, False, True])
    assert d.down == frozenset({1}) and shares(d.slots, 3) == [32, 0, 32]
    assert d.slots[:4] == (0, 2, 0, 2)
    # lane 0 is the link: never reported down, whatever it is told
    assert feed(b, [[0, 0, 0]], up=[False, True, True]).down == frozenset()
    # back up: even again over all three
    assert feed(b, [[0, 0, 0]]) == lane_balance.even(3)


def test_a_counter_that_restarts_counts_from_zero():
    b = LaneBalance(2)
    feed(b, [[50 * MB, 50 * MB]] * 3)
    d = b.update([5 * MB, 40 * MB], [True, True], 1.0)  # table rebuilt: counters from 0
    assert all(r >= 0 for r in b.rates) and shares(d.slots, 2)[0] > 32


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="one counter"):
        LaneBalance(2).update([1], [True], 1.0)
    with pytest.raises(ValueError, match="lanes"):
        LaneBalance(0)


class RecordingSteering(LaneSteering):
    """Counters from a list; what the rebalancer would put into nftables, recorded."""

    def __init__(self, counters: list[list[int]], up: list[bool]) -> None:
        super().__init__(len(up), 4789)
        self.sequence, self.up = counters, up
        self.applied: list[Decision] = []

    def counters(self) -> list[int] | None:
        return self.sequence.pop(0) if self.sequence else None

    def lane_up(self, lane: int) -> bool:
        return self.up[lane]

    def apply(self, decision: Decision) -> bool:
        if decision == self.decision:
            return False
        self.decision = decision
        self.applied.append(decision)
        return True


def test_the_rebalancer_applies_only_decisions_that_change_something():
    clock = iter(float(t) for t in range(100))
    counters = [[i * 10 * MB, i * 10 * MB] for i in range(3)]
    counters += [[30 * MB + i * 40 * MB, 30 * MB] for i in range(1, 16)]
    steering = RecordingSteering(counters, [True, True])
    balancer = LaneBalancer(steering, clock=lambda: next(clock))
    for _ in range(3):
        balancer.tick()
    assert steering.applied == []  # even lanes: nothing to change
    for _ in range(15):
        balancer.tick()
    # a few new tables while the smoothed rates settle, then none while the skew lasts
    assert 1 <= len(steering.applied) <= 4
    assert all(a != b for a, b in zip(steering.applied, steering.applied[1:], strict=False))
    assert shares(steering.applied[-1].slots, 2)[1] >= 60
    steering.up[1] = False
    steering.sequence = [[700 * MB, 30 * MB]]
    d = balancer.tick()
    assert d is not None and d.down == frozenset({1}) and steering.applied[-1] == d
    assert balancer.tick() is None  # no table: nothing to do


class ScriptedSteering(LaneSteering):
    """Runs nothing: an empty host (no table, no rules); records the nft scripts."""

    def __init__(self, lanes: int) -> None:
        super().__init__(lanes, 4789)
        self.scripts: list[str] = []

    def _run(self, argv: list[str], stdin: str | None = None, check: bool = True) -> str:
        if argv[:2] == ["nft", "-f"]:
            self.scripts.append(stdin or "")
        return "[]" if argv[0] == "ip" else ""


def test_a_table_remade_for_fewer_lanes_names_only_those():
    steering = ScriptedSteering(3)
    assert steering.apply(Decision(spread([8, 0, 8]), frozenset({1})))  # no table: kept
    steering.lanes = 2  # a lane less configured
    assert steering.ensure() is True
    script = steering.scripts[-1]
    assert "0x1d2" not in script and "elements = { 0 : 0x1d0, 1 : 0x1d1," in script
    assert steering.decision == lane_balance.even(2)
