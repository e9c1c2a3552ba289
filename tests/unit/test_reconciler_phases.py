"""Where a pass went: the milliseconds of each phase of the last pass in /v1/status
(`reconciler.last_phases_ms`), in the order cycle.py runs them, also for a pass that failed."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

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
