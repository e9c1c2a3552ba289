"""How long the reconciler rests after a pass (reconciler/pacing.py)."""

from __future__ import annotations

import pytest

from intercloud.reconciler.pacing import (
    PENDING_FAST,
    RETRY_CONNECTING,
    RETRY_LINK_DOWN,
    RETRY_PENDING,
    Pace,
    link_retry,
    next_wait,
)
from intercloud.reconciler.parts import PassResult


def test_a_settled_pass_rests_the_interval_even_with_a_link_down():
    assert next_wait(10.0, PassResult()) == 10.0
    assert next_wait(10.0, PassResult(links_down=True)) == 10.0


def test_unsettled_passes_that_change_nothing_back_off_up_to_the_interval():
    pace = Pace()
    idle = PassResult(settled=False)
    waits = [pace.after(idle, 5.0) for _ in range(PENDING_FAST + 6)]
    assert waits[:PENDING_FAST] == [RETRY_PENDING] * PENDING_FAST
    assert waits[PENDING_FAST : PENDING_FAST + 3] == pytest.approx(
        [RETRY_PENDING * 2, RETRY_PENDING * 4, RETRY_PENDING * 8]
    )
    assert waits[-1] == 5.0


@pytest.mark.parametrize("reset", [PassResult(settled=False, changes=1), PassResult()])
def test_a_pass_that_changed_something_or_settled_starts_the_count_again(reset):
    pace = Pace()
    for _ in range(PENDING_FAST + 3):
        pace.after(PassResult(settled=False), 5.0)
    pace.after(reset, 5.0)
    assert pace.idle_unsettled == 0
    assert pace.after(PassResult(settled=False), 5.0) == RETRY_PENDING


def test_a_link_down_is_asked_sooner_while_it_is_coming_up():
    assert link_retry(True) == RETRY_CONNECTING < link_retry(False) == RETRY_LINK_DOWN


def test_only_a_long_pass_is_followed_by_a_gap_of_its_own_length_at_most_max_gap():
    from intercloud.reconciler.pacing import GAP_FROM, MAX_GAP

    pace = Pace()
    pace.after(PassResult(), 5.0, took=GAP_FROM / 2)
    assert pace.gap == 0.0
    pace.after(PassResult(), 5.0, took=GAP_FROM * 1.5)
    assert pace.gap == GAP_FROM * 1.5
    pace.after(PassResult(), 5.0, took=MAX_GAP * 3)
    assert pace.gap == MAX_GAP
