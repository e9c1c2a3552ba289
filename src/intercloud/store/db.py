"""Engine, sessions and schema migration."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from intercloud.errors import Conflict

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API callback
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _wrote(session: Session, _context: object) -> None:
    session.info["wrote"] = True


def _wrote_by_statement(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info["wrote"] = True


def _rolled_back(session: Session, _previous: object) -> None:
    session.info.pop("wrote", None)


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Bumped after every commit that wrote something (ORM flush or an INSERT/UPDATE/DELETE
        # statement), by this process: what a read cache keys on (api/reads.py). After the
        # commit, so a reader never caches data older than the generation it read first.
        self._counter = itertools.count(1)
        self.generation = 0
        event.listen(self._sessions, "after_flush", _wrote)
        event.listen(self._sessions, "do_orm_execute", _wrote_by_statement)
        event.listen(self._sessions, "after_commit", self._committed)
        event.listen(self._sessions, "after_soft_rollback", _rolled_back)

    def _committed(self, session: Session) -> None:
        if session.info.pop("wrote", False):
            self.generation = next(self._counter)

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to `revision`, the newest by default (a no-op when it is there)."""
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def tables(self) -> set[str]:
        return set(inspect(self.engine).get_table_names())

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on error. A unique-constraint
        violation becomes a Conflict."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            raise Conflict(f"conflicts with an existing object ({exc.orig})") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
