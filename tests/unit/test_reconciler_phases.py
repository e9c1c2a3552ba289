"""Where a pass went: the milliseconds of each phase of the last pass in /v1/status
(`reconciler.last_phases_ms`), in the order cycle.py runs them, also for a pass that failed."""

from __future__ import annotations

import gc

from sqlalchemy.exc import OperationalError

from intercloud import heap
from intercloud.reconciler import connections
from tests.functional.federation_harness import Router, make_agent

PHASES = ["ipsec", "links", "targets", "relays", "members", "cloud", "dataplane", "moves", "status"]


def test_status_shows_each_phase_of_the_last_pass(tmp_path):
    agent = make_agent(tmp_path, Router(), "A", 1)
    try:
        agent.reconcile()
        st = agent.admin("GET", "/v1/status").json()["reconciler"]
        phases = st["last_phases_ms"]
        assert list(phases) == PHASES
        assert all(isinstance(v, float) and v >= 0 for v in phases.values())
        assert sum(phases.values()) <= st["last_duration_ms"] + 1  # parts of one pass
    finally:
        agent.ctx.store.dispose()


def test_a_pass_that_fails_shows_the_phases_up_to_the_failure(tmp_path, monkeypatch):
    agent = make_agent(tmp_path, Router(), "A", 1)
    try:

        def fail(*_args, **_kw):
            raise OperationalError("SELECT 1", {}, Exception("database is gone"))

        monkeypatch.setattr(connections, "converge", fail)
        agent.reconcile()
        st = agent.admin("GET", "/v1/status").json()["reconciler"]
        assert list(st["last_phases_ms"]) == ["ipsec"]
        assert st["last_error"]
    finally:
        agent.ctx.store.dispose()


def test_status_and_metrics_give_the_collectors_time_while_it_is_timed(tmp_path, monkeypatch):
    """The agent times the cyclic collector (heap.COLLECTOR): a pass in which it walked says
    how long in `last_gc_ms`, and /metrics counts its walks and seconds by generation."""
    agent = make_agent(tmp_path, Router(), "A", 1)
    clock = heap.CollectorTime()
    monkeypatch.setattr(heap, "COLLECTOR", clock)
    try:
        agent.reconcile()  # not timed: the status does not pretend
        assert agent.admin("GET", "/v1/status").json()["reconciler"]["last_gc_ms"] is None
        assert "intercloud_gc_seconds_total" not in agent.admin("GET", "/metrics").text

        converge = connections.converge

        def with_garbage(*args, **kw):
            rings = [Ring() for _ in range(100_000)]
            del rings
            gc.collect()  # a walk in the middle of the pass
            return converge(*args, **kw)

        monkeypatch.setattr(connections, "converge", with_garbage)
        clock.start()
        agent.reconcile()
        st = agent.admin("GET", "/v1/status").json()["reconciler"]
        assert 0 < st["last_gc_ms"] <= st["last_duration_ms"]
        scraped = agent.admin("GET", "/metrics").text

        def sample(series: str) -> float:
            return next(
                float(line.split()[-1]) for line in scraped.splitlines() if line.startswith(series)
            )

        assert sample('intercloud_gc_collections_total{generation="2"}') >= 1
        assert 'intercloud_gc_seconds_total{generation="2"}' in scraped
        assert sample('intercloud_gc_longest_walk_seconds{generation="2"}') > 0
    finally:
        clock.stop()
        agent.ctx.store.dispose()


class Ring:
    def __init__(self) -> None:
        self.me = self
