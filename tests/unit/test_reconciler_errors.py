"""A pass that fails on the database says so without the database's text (PostgreSQL's DETAIL
quotes the failing row: a peer key or PSK)."""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError

from intercloud.reconciler import connections
from tests.functional.federation_harness import Router, make_agent

SECRET = "s3cr3t-psk-0123456789abcdef"


def test_a_database_error_in_a_pass_shows_no_secret(tmp_path, monkeypatch, caplog):
    agent = make_agent(tmp_path, Router(), "A", 1)
    try:

        def fail(*_args, **_kw):
            orig = Exception(f'null value in column "x"\nDETAIL: Failing row contains ({SECRET})')
            raise IntegrityError("UPDATE links SET psk=%(psk)s", {"psk": SECRET}, orig)

        monkeypatch.setattr(connections, "converge", fail)
        caplog.set_level(logging.DEBUG)
        agent.reconcile()
        last = agent.ctx.reconciler.stats.last_error
        assert last and "database error" in last
        assert SECRET not in last
        status = agent.admin("GET", "/v1/status").text
        assert SECRET not in status
        for rec in caplog.records:
            assert SECRET not in rec.getMessage()
            assert rec.exc_info is None or SECRET not in str(rec.exc_info[1])
    finally:
        agent.ctx.store.dispose()
