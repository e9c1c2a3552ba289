"""The schema's revision read without alembic: an agent whose database is already at the newest
revision starts without importing alembic; one that is behind is migrated as before."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory

from intercloud.store import Store
from intercloud.store import db as db_mod


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/agent.db")
    yield s
    s.dispose()


def test_head_revision_is_the_newest_migration():
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(db_mod.MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_heads() == [db_mod.HEAD_REVISION]


def test_revision_follows_the_migrations(store):
    assert store.revision() is None  # no schema yet
    store.migrate("0001")
    assert store.revision() == "0001"
    store.migrate()  # behind: alembic brings it to the newest
    assert store.revision() == db_mod.HEAD_REVISION
    assert "gateway_leases" in store.tables()


def test_a_database_at_the_newest_revision_is_not_migrated_again(store, monkeypatch):
    store.migrate()
    calls = []
    monkeypatch.setattr(command, "upgrade", lambda *a: calls.append(a))
    store.migrate()
    assert calls == []
    store.migrate("0009")  # any other revision asked for still goes through alembic
    assert len(calls) == 1


def test_the_agent_imports_no_alembic(tmp_path):
    # the agent's modules, and a start on a database at the newest revision
    Store(f"sqlite:///{tmp_path}/agent.db").migrate()
    code = (
        "import sys, intercloud.agent\n"
        "from intercloud.store import Store\n"
        f"Store('sqlite:///{tmp_path}/agent.db').migrate()\n"
        "print('alembic' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
