"""The gateway lease on PostgreSQL (domain/leadership.py says the rules). One row per cloud
in `gateway_leases`; every claim is one atomic UPDATE judged by the database's clock, on a
connection of its own (never the agent's pool: a pool busy with slow requests must not delay
a renewal), with a short TCP timeout so a cut link fails the call instead of hanging it.

A takeover ends the old term's writes that did not commit. A gateway cut off between its
write's fence check and its COMMIT (store/fence.py) leaves a session on the server that holds
the lease row, and the rows it wrote, until TCP keepalive notices (two hours by default): the
takeover would wait for it that long, and the new active's passes for those rows. So a claim
waits for the lease row at most `lock_wait` seconds (then ends what holds it), and the first
renewal after a takeover terminates the sessions of the cloud's other gateways that hold a
write lock (their commit would be refused anyway)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from intercloud.domain.leadership import LeaseView, Timing
from intercloud.domain.remote_macs import RemoteMacs, checked
from intercloud.errors import Invalid

log = logging.getLogger("intercloud.leases")

# Renewal by the holder (same gateway, same token) keeps token and `since`; anything else is
# a takeover: a new token, and the failover's duration is the time since the old holder's
# last renewal. A takeover needs the lease expired, released, or its holder's session gone
# for `orphan` seconds after its last renewal (see Timing.orphan_s for why not at once).
_CLAIM = text(
    """
    UPDATE gateway_leases SET
      token = CASE WHEN holder = :me AND token = :token THEN token ELSE token + 1 END,
      since = CASE WHEN holder = :me AND token = :token THEN since ELSE now() END,
      last_failover_ms = CASE
        WHEN holder = :me AND token = :token THEN last_failover_ms
        WHEN renewed_at IS NULL THEN NULL
        ELSE round(extract(epoch FROM now() - renewed_at) * 1000)::integer END,
      holder = :me,
      holder_pid = pg_backend_pid(),
      renewed_at = now(),
      expires_at = now() + make_interval(secs => :ttl)
    WHERE cloud = :cloud AND (
      (holder = :me AND token = :token)
      OR holder IS NULL
      OR expires_at <= now()
      OR (now() >= renewed_at + make_interval(secs => :orphan)
          AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                          WHERE a.pid = gateway_leases.holder_pid)))
    RETURNING token
    """
)
_RELEASE = text(
    """
    UPDATE gateway_leases SET holder = NULL, holder_pid = NULL, expires_at = now(),
      renewed_at = now()
    WHERE cloud = :cloud AND holder = :me AND token = :token
    """
)
_SEEN = text(
    """
    INSERT INTO gateways (cloud, name, role, seen_at) VALUES (:cloud, :me, :role, now())
    ON CONFLICT (cloud, name) DO UPDATE SET role = excluded.role, seen_at = excluded.seen_at
    """
)
_ROW = text("INSERT INTO gateway_leases (cloud, token) VALUES (:cloud, 0) ON CONFLICT DO NOTHING")
# Fenced by the lease: written only while `me` holds it with `token` (FOR SHARE: a takeover
# committing meanwhile is waited for and then seen), never over a later term's list.
_SAVE_MACS = text(
    """
    INSERT INTO gateway_macs (cloud, token, macs, saved_at)
    SELECT cloud, token, CAST(:macs AS json), now() FROM gateway_leases
    WHERE cloud = :cloud AND holder = :me AND token = :token AND expires_at > now()
    FOR SHARE
    ON CONFLICT (cloud) DO UPDATE SET
      token = excluded.token, macs = excluded.macs, saved_at = excluded.saved_at
    WHERE gateway_macs.token <= excluded.token
    RETURNING token
    """
)
_MACS = text("SELECT macs FROM gateway_macs WHERE cloud = :cloud")
# After a refused claim: seconds until a claim could succeed (the rules of _CLAIM), so that a
# standby claims then rather than at its next tick (a kill -9 takeover ~0.1 s sooner on average)
_CHANCE = text(
    """
    SELECT GREATEST(0, extract(epoch FROM CASE
      WHEN holder IS NULL THEN now()
      WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = gateway_leases.holder_pid)
        THEN LEAST(expires_at, renewed_at + make_interval(secs => :orphan))
      ELSE expires_at END - now()))
    FROM gateway_leases WHERE cloud = :cloud
    """
)

# The sessions (of `names`, the other gateways') in a transaction that wrote or holds the lease
# row: writes of a term that is over, which may wait forever for a COMMIT (see the top).
_END_OLD_TERM = text(
    """
    SELECT a.application_name, pg_terminate_backend(a.pid) FROM pg_stat_activity a
    WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
      AND a.application_name = ANY(CAST(:names AS text[])) AND a.xact_start IS NOT NULL
      AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.granted
                  AND (l.mode = 'RowExclusiveLock' OR l.relation = 'gateway_leases'::regclass))
    """
)
_OTHERS = text("SELECT name FROM gateways WHERE cloud = :cloud AND name <> :me")
LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of lock_timeout


def session_name(cloud: str, gateway: str) -> str:
    """The application_name of gateway `gateway`'s database sessions (its Store's; the lease's
    own connection has another): how a takeover finds them. PostgreSQL keeps 63 bytes."""
    name = f"intercloud {cloud}/{gateway}"  # names have neither spaces nor slashes
    if len(name) <= 63:
        return name
    return "intercloud " + hashlib.sha256(f"{cloud}/{gateway}".encode()).hexdigest()[:40]


def _lock_timed_out(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE


class _Connection:
    """One connection of its own (AUTOCOMMIT), opened on use with `setup` run first, dropped
    after any failure (the next call opens a new one)."""

    def __init__(self, engine: Engine, setup: list[tuple[Any, dict[str, Any]]]) -> None:
        self._engine = engine
        self._setup = setup
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    def call(self, use: Callable[[Connection], Any]) -> Any:
        with self._lock:
            return self._call(use)

    def read(self, statement: Any, params: dict[str, Any]) -> Any:
        """`run` for a read: if a connection opened before failed, once more on a new one
        (a link cut and restored leaves a connection that fails only when used again)."""
        with self._lock:
            opened = self._conn is not None
            try:
                return self._call(lambda conn: conn.execute(statement, params))
            except Exception:
                if not opened:
                    raise
            return self._call(lambda conn: conn.execute(statement, params))

    def _call(self, use: Callable[[Connection], Any]) -> Any:
        try:
            if self._conn is None or self._conn.closed or self._conn.invalidated:
                conn = self._engine.connect()
                conn.execution_options(isolation_level="AUTOCOMMIT")
                self._conn = conn
                for statement, params in self._setup:
                    conn.execute(statement, params)
            return use(self._conn)
        except Exception:
            self._drop()
            raise

    def run(self, statement: Any, params: dict[str, Any]) -> Any:
        return self.call(lambda conn: conn.execute(statement, params))

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception as exc:  # a dead connection may fail to close: it is gone anyway
                log.debug("lease connection close: %s", type(exc).__name__)


class PostgresLeases:
    """LeaseStore of domain/leadership.py for cloud `cloud`."""

    def __init__(
        self, url: str, cloud: str, gateway: str, timing: Timing, lock_wait: float | None = None
    ) -> None:
        if not url.startswith("postgresql"):  # config.py says so to the operator first
            raise Invalid("gateway leases need PostgreSQL", field="agent.database")
        self.cloud = cloud
        self.gateway = gateway
        self.timing = timing
        timeout_s = max(2, math.ceil(timing.ttl_s))
        self._engine = create_engine(
            url,
            poolclass=NullPool,
            hide_parameters=True,
            connect_args={
                "connect_timeout": timeout_s,
                # unacknowledged data for this long closes the connection: a cut link fails
                # the call in about the lease's time, not after TCP's minutes of retries
                "tcp_user_timeout": int(timing.ttl_s * 1000),
                "keepalives": 1,
                "keepalives_idle": timeout_s,
                "keepalives_interval": 1,
                "keepalives_count": 2,
                "application_name": f"intercloud-ha-{gateway}"[:63],
            },
        )
        # a claim waits this long for a write in flight (default: one renewal interval)
        wait_ms = max(1, round((timing.renew_s if lock_wait is None else lock_wait) * 1000))
        lock_timeout = text(f"SET lock_timeout = {wait_ms}")
        self._lease = _Connection(self._engine, [(lock_timeout, {}), (_ROW, {"cloud": cloud})])
        self.chance_in: float | None = None  # after a refused claim: seconds until one may win
        self._old_term_open = False  # taken over, the old term's writes not yet ended
        # the MACs on a connection of their own: a large list never delays a renewal
        timeout = text(f"SET statement_timeout = {timeout_s * 1000}")
        self._macs = _Connection(self._engine, [(timeout, {})])

    def view(self) -> tuple[LeaseView, list[dict[str, Any]]]:
        answer: tuple[LeaseView, list[dict[str, Any]]] = self._lease.call(
            lambda conn: lease_view(conn.execute, self.cloud)
        )
        return answer

    def claim(self, gateway: str, token: int | None, timing: Timing) -> int | None:
        params = {
            "cloud": self.cloud,
            "me": gateway,
            "token": -1 if token is None else token,
            "ttl": timing.ttl_s,
            "orphan": timing.orphan_s,
        }
        try:
            row = self._lease.run(_CLAIM, params).first()
        except DBAPIError as exc:
            if not _lock_timed_out(exc):
                raise
            # claimable, but a write of the old term holds the row past lock_wait
            self._end_old_term(gateway)
            row = self._lease.run(_CLAIM, params).first()
        held = None if row is None else int(row[0])
        if held is not None and held == token and self._old_term_open:
            self._end_old_term(gateway)  # the renewal after a takeover: the role has acted
        # a takeover: the old term's row locks are ended at the next renewal, not now, so
        # that the new active takes the address and initiates IKE first (a few ms sooner);
        # only a renewal that keeps the token may end them (no other gateway is active then)
        self._old_term_open = held is not None and held != token
        self.chance_in = None
        if held is None:
            chance = self._lease.run(_CHANCE, params).first()
            self.chance_in = None if chance is None or chance[0] is None else float(chance[0])
        role = "active" if held is not None else "standby"
        self._lease.run(_SEEN, {"cloud": self.cloud, "me": gateway, "role": role})
        return held

    def _end_old_term(self, gateway: str) -> None:
        """Terminate the other gateways' sessions holding write locks (see the top)."""
        others = [r[0] for r in self._lease.run(_OTHERS, {"cloud": self.cloud, "me": gateway})]
        if not others:
            return
        names = [session_name(self.cloud, other) for other in others]
        ended = self._lease.run(_END_OLD_TERM, {"names": names}).all()
        if ended:
            log.warning(
                "gateway %s of %s: ended %d database session(s) of the old term (%s): writes "
                "begun before the takeover, never committed",
                gateway,
                self.cloud,
                len(ended),
                ", ".join(sorted({str(r[0]) for r in ended})),
            )

    def release(self, gateway: str, token: int) -> None:
        self._lease.run(_RELEASE, {"cloud": self.cloud, "me": gateway, "token": token})

    def save_macs(self, gateway: str, token: int, macs: RemoteMacs) -> bool:
        params = {"cloud": self.cloud, "me": gateway, "token": token, "macs": json.dumps(macs)}
        return self._macs.run(_SAVE_MACS, params).first() is not None

    def macs(self) -> RemoteMacs:
        row = self._macs.read(_MACS, {"cloud": self.cloud}).first()
        return checked(None if row is None else row[0], f"the database of {self.cloud}")

    def close(self) -> None:
        self._lease.close()
        self._macs.close()
        self._engine.dispose()


def lease_view(execute: Any, cloud: str) -> tuple[LeaseView, list[dict[str, Any]]]:
    """The lease and every gateway seen (name, role, seconds since it last claimed), read with
    `execute` (a session's: status reads use the agent's pool, never the lease's connection)."""
    lease = execute(
        text(
            "SELECT holder, token, since, last_failover_ms, expires_at > now() "
            "FROM gateway_leases WHERE cloud = :cloud"
        ),
        {"cloud": cloud},
    ).first()
    rows = execute(
        text(
            "SELECT name, role, extract(epoch FROM now() - seen_at) FROM gateways "
            "WHERE cloud = :cloud ORDER BY name"
        ),
        {"cloud": cloud},
    ).all()
    gateways = [{"name": r[0], "role": r[1], "seen_s_ago": round(float(r[2]), 1)} for r in rows]
    if lease is None:
        return LeaseView(None, 0), gateways
    since = lease[2].isoformat() if lease[2] is not None else None
    view = LeaseView(
        holder=lease[0] if lease[4] else None,
        token=int(lease[1]),
        since=since,
        last_failover_at=since if lease[3] is not None else None,
        last_failover_ms=lease[3],
    )
    return view, gateways
