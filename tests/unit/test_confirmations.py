"""Re-checks of active replicas with their peers (reconciler/memory.py): each one every
PEER_REFRESH, spread over that window, and at most CONFIRMS_PER_PASS in one pass."""

from __future__ import annotations

from intercloud.reconciler.memory import CONFIRMS_PER_PASS, PEER_REFRESH, Memory


def _due(memory: Memory, targets: range, now: float) -> list[int]:
    """One pass: the budget renewed, each due target confirmed (as targets.py does)."""
    memory.choose_confirms(targets, now)
    due = [t for t in targets if memory.confirm_due(t)]
    memory.confirmed_at.update(dict.fromkeys(due, now))
    return due


def test_first_checks_are_spread_over_the_window():
    memory = Memory()
    targets = range(1, 201)
    assert _due(memory, targets, 0.0) == []  # none at once after a start
    seen: set[int] = set()
    for second in range(1, int(PEER_REFRESH) + 1):
        due = _due(memory, targets, float(second))
        assert len(due) <= 8, (second, due)  # ~200 / 60 a second, not a burst
        seen.update(due)
    assert seen == set(targets)  # each one within one window


def test_a_pass_makes_at_most_its_budget_and_the_rest_stay_due():
    memory = Memory()
    targets = range(1, 10_001)
    _due(memory, targets, 0.0)
    later = PEER_REFRESH * 2  # all of them due
    first = _due(memory, targets, later)
    assert len(first) == CONFIRMS_PER_PASS
    second = _due(memory, targets, later + 5)
    assert len(second) == CONFIRMS_PER_PASS and not set(first) & set(second)
    # the longest waiting first: 10,000 in 100 passes, none twice meanwhile
    checked = first + second
    for k in range(2, 10_000 // CONFIRMS_PER_PASS):
        checked += _due(memory, targets, later + 5 * k)
    assert sorted(checked) == list(targets)
