"""Finding 8 of issue 13 (the database half): the SQLite file that holds peer keys and PSKs
is the agent's alone, and so is a directory the agent makes for it."""

from __future__ import annotations

import logging
import os
import stat

import pytest
from sqlalchemy import text

from intercloud.errors import DriverError
from intercloud.store import Store
from intercloud.store import db as db_mod


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask():
    """umask 0: what the modes are is then the agent's doing, not the umask's."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_new_database_and_its_directories_are_private(tmp_path, open_umask):
    path = tmp_path / "var" / "lib" / "agent.db"
    store = Store(f"sqlite:///{path}")
    try:
        store.migrate()
        with store.session() as s:
            s.execute(text("CREATE TABLE scratch (x)"))
        # -wal and -shm exist while the store has connections open
        assert (tmp_path / "var" / "lib" / "agent.db-wal").exists()
        for file in ("agent.db", "agent.db-wal", "agent.db-shm"):
            assert mode(path.parent / file) == 0o600, file
        assert mode(tmp_path / "var") == 0o700
        assert mode(tmp_path / "var" / "lib") == 0o700
    finally:
        store.dispose()


def test_existing_directory_is_left_alone(tmp_path, open_umask):
    os.chmod(tmp_path, 0o755)
    store = Store(f"sqlite:///{tmp_path}/agent.db")
    store.dispose()
    assert mode(tmp_path) == 0o755
    assert mode(tmp_path / "agent.db") == 0o600


def test_world_readable_database_is_narrowed_with_a_warning(tmp_path, open_umask, caplog):
    path = tmp_path / "agent.db"
    old = Store(f"sqlite:///{path}")
    old.migrate()
    old.dispose()
    os.chmod(path, 0o644)  # as earlier versions left it
    caplog.set_level(logging.WARNING, logger="intercloud.store")
    store = Store(f"sqlite:///{path}")
    try:
        assert mode(path) == 0o600
        assert "readable by others (mode 0644)" in caplog.text
        assert "ike_policies" in store.tables()  # same database, nothing lost
    finally:
        store.dispose()


def test_world_readable_database_that_cannot_be_changed_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "agent.db"
    path.touch()
    os.chmod(path, 0o644)

    def refuse(*_args, **_kwargs):
        raise PermissionError("not the owner")

    monkeypatch.setattr(db_mod.os, "chmod", refuse)
    with pytest.raises(DriverError, match=r"readable by others \(mode 0644\).*chmod 600"):
        Store(f"sqlite:///{path}")


def test_memory_and_postgres_urls_touch_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Store("sqlite://").dispose()
    Store("sqlite:///:memory:").dispose()
    assert list(tmp_path.iterdir()) == []
