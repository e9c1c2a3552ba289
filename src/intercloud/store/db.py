"""Engine, sessions and schema migration."""

from __future__ import annotations

import itertools
import logging
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from sqlalchemy import create_engine, event, inspect, make_url, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from intercloud.errors import Conflict, DriverError, Invalid
from intercloud.store.fence import Fence, writes

log = logging.getLogger("intercloud.store")

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest revision in MIGRATIONS (a unit test holds them equal): a database already there is
# told by one query, without importing alembic (~0.1 s of every agent start, measured)
HEAD_REVISION = "0010"
# SQLite lets one connection write at a time; another writer sleeps in its busy handler (1, 2,
# 5 ... 100 ms between tries). With 50 concurrent API writes that gave p99 1,043 ms; writers of
# this process taking turns on a lock instead: 323 ms (bench, API writes). Readers never take
# it (WAL lets them read meanwhile). Past WRITER_WAIT a writer goes on and SQLite decides, as
# before (its busy_timeout is the same 5 s).
WRITER_WAIT = 5.0
MIGRATION_LOCK = 0x1C_0001  # the advisory lock key schema migrations take on PostgreSQL


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # DB-API callback
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def _private_sqlite_file(url: str) -> None:
    """The database holds peer keys and PSKs: its file is created 0600 (SQLite gives its -wal
    and -shm files the database file's mode), the directories the agent creates 0700. An
    existing file readable by others (what earlier versions created) is narrowed to 0600 with a
    warning: the agent is its only reader, and refusing would stop every upgraded agent until
    someone ran chmod by hand. One the agent cannot chmod (another owner) is refused."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    missing = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)  # mkdir's mode is cut by the umask; never widened by it
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077 == 0:
            continue
        try:
            os.chmod(file, mode & 0o700)
        except PermissionError as exc:
            raise DriverError(
                f"database file {file} is readable by others (mode {mode:04o}) and the agent "
                f"cannot change that: chmod 600 {file}"
            ) from exc
        log.warning(
            "database file %s was readable by others (mode %04o): now %04o; the peer keys "
            "and PSKs in it may have been read, consider replacing them",
            file,
            mode,
            mode & 0o700,
        )


def make_engine(url: str, session_name: str | None = None) -> Engine:
    # hide_parameters: a statement's parameters (peer keys, PSKs) appear neither in the
    # engine's log nor in the text of its exceptions, which reach logs and status fields
    if url.startswith("sqlite"):
        _private_sqlite_file(url)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            hide_parameters=True,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # session_name: its sessions' application_name (gateway HA: a takeover ends them by it)
    args = {} if session_name is None else {"application_name": session_name}
    return create_engine(url, pool_pre_ping=True, hide_parameters=True, connect_args=args)


def describe(exc: BaseException) -> str:
    """`exc` in one line for a log or a status field, a database error without its text: even
    with hide_parameters that holds the database's message, and PostgreSQL's quotes values
    (a NOT NULL or CHECK violation's DETAIL is the whole failing row, peer key or PSK
    included)."""
    if not isinstance(exc, SQLAlchemyError):
        return f"{type(exc).__name__}: {exc}"
    orig = getattr(exc, "orig", None)
    return describe_driver_error(orig if orig is not None else exc)


def describe_driver_error(exc: BaseException) -> str:
    """A database driver's own exception (what a database error wraps), without its text."""
    code = getattr(exc, "sqlstate", None)
    return f"{type(exc).__name__} (database error {code}; its text is not shown)"


def _first_line(exc: IntegrityError) -> str:
    """The database's own message without its detail: PostgreSQL's DETAIL quotes values (a
    NOT NULL or CHECK violation shows the whole failing row, keys included)."""
    diag = getattr(exc.orig, "diag", None)
    primary = getattr(diag, "message_primary", None)
    return primary or str(exc.orig).splitlines()[0]


def _only_table(session: Session, table: str) -> bool:
    """The session's pending changes are all rows of `table`."""
    changed = [*session.new, *session.dirty, *session.deleted]
    return all(getattr(type(obj), "__tablename__", None) == table for obj in changed)


def _rolled_back(session: Session, _previous: object) -> None:
    session.info.pop("wrote", None)


class Store:
    def __init__(self, url: str, session_name: str | None = None) -> None:
        self.url = url
        self.engine = make_engine(url, session_name)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Bumped after every commit that wrote something (ORM flush or an INSERT/UPDATE/DELETE
        # statement), by this process: what a read cache keys on (api/reads.py). After the
        # commit, so a reader never caches data older than the generation it read first.
        self._counter = itertools.count(1)
        self.generation = 0
        # Per table, for the sessions that say which one they write (`session(shown=table)`):
        # the reconciler writes each link's check time and IPsec counters on every pass, which
        # only the links' views show; the others stay kept (they were rebuilt after every pass).
        self._tables: dict[str, int] = {}
        self._writer = threading.RLock()
        self._takes_turns = url.startswith("sqlite")
        # Gateway HA (store/fence.py): set, every writing commit checks this gateway's lease
        self.fence: Fence | None = None
        event.listen(self._sessions, "before_commit", self._fenced)
        event.listen(self._sessions, "before_flush", self._writing)
        event.listen(self._sessions, "do_orm_execute", self._writing_by_statement)
        event.listen(self._sessions, "after_commit", self._committed)
        event.listen(self._sessions, "after_commit", self._end_turn)
        event.listen(self._sessions, "after_rollback", self._end_turn)
        event.listen(self._sessions, "after_soft_rollback", _rolled_back)

    def generations(self, tables: tuple[str, ...] = ()) -> tuple[int, ...]:
        """What a view that reads `tables` besides the rest is current for: the generation,
        and that of each of those tables. Equal to a view's: nothing it shows was written."""
        return (self.generation, *(self._tables.get(t, 0) for t in tables))

    def _writing(self, session: Session, *_args: object) -> None:
        """A session is about to write (a flush, or an INSERT/UPDATE/DELETE statement): its
        commit will bump the generation, and on SQLite it takes the writers' turn first."""
        session.info["wrote"] = True
        table = session.info.get("shown")
        if isinstance(table, str) and not _only_table(session, table):
            session.info["shown"] = True  # it writes more than it said: every view sees it
        if self._takes_turns and "writer" not in session.info:
            # A connection first: a session whose first statement writes would otherwise take
            # the turn and then wait for the pool, whose connections all belong to writers
            # waiting for that turn (seen under 50 writers: 5-25 s stalls).
            session.connection()
            session.info["writer"] = self._writer.acquire(timeout=WRITER_WAIT)

    def _writing_by_statement(self, state: ORMExecuteState) -> None:
        if state.is_insert or state.is_update or state.is_delete:
            if isinstance(state.session.info.get("shown"), str):
                state.session.info["shown"] = True  # a statement: not told apart by table
            self._writing(state.session)

    def _fenced(self, session: Session) -> None:
        fence = self.fence
        if fence is None or not session.info.get("fenced", True):
            return
        if writes(session, bool(session.info.get("wrote"))):
            fence.check(session)

    def _end_turn(self, session: Session) -> None:
        if session.info.pop("writer", False):
            self._writer.release()

    def _committed(self, session: Session) -> None:
        if not session.info.pop("wrote", False):
            return
        shown = session.info.get("shown", True)
        if isinstance(shown, str):
            self._tables[shown] = next(self._counter)
        elif shown:
            self.generation = next(self._counter)

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to `revision`, the newest by default (a no-op when it is there)."""
        if revision == "head" and self.revision() == HEAD_REVISION:
            return
        from alembic import command
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # gateways of one cloud start together on one database: one migrates at a time
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def revision(self) -> str | None:
        """The schema's revision as alembic recorded it (None: no schema yet)."""
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def tables(self) -> set[str]:
        return set(inspect(self.engine).get_table_names())

    @contextmanager
    def session(self, *, shown: bool | str = True, fenced: bool = True) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on error. A unique-constraint
        violation becomes a Conflict. `shown=False`: what it writes is in no API view (the
        federation nonces), so its commit leaves the generation, and the read cache, alone.
        `shown=<table>`: it writes rows of that table only, which only the views that name
        it show (`generations`); if it writes anything else, every view sees it.
        `fenced=False`: what it writes is bookkeeping any gateway of the cloud may do, active
        or standby (a federation call's nonce), so the lease is not checked (store/fence.py)."""
        session = self._sessions()
        session.info["shown"] = shown
        session.info["fenced"] = fenced
        try:
            yield session
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            raise Conflict(f"conflicts with an existing object ({_first_line(exc)})") from exc
        except DataError as exc:
            # a value the database refuses (too long for its column, out of range): bad input.
            # Only the database's error class is told: its text may quote the value.
            session.rollback()
            raise Invalid(f"a value does not fit the database ({type(exc.orig).__name__})") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
            self._end_turn(session)

    def dispose(self) -> None:
        self.engine.dispose()
