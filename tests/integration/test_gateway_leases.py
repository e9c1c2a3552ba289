"""The gateway lease's SQL (store/leases.py) on a real PostgreSQL: renewal, takeover only
after expiry, a gone session taken over only once its holder must have stepped down, release,
and the token growing at each takeover."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy.exc import OperationalError

from intercloud.domain.leadership import Timing
from intercloud.store import Store
from intercloud.store.leases import PostgresLeases

# Long enough that a loaded machine's latencies (a claim, a sleep overrunning) stay well inside
# every window these tests check: orphan_s 3.0, ttl 4.0.
TIMING = Timing(ttl_s=4.0, renew_s=0.2, step_down_s=2.0)


@pytest.fixture
def leases(postgres_url):
    Store(postgres_url).migrate()
    made = []

    def make(gateway: str) -> PostgresLeases:
        store = PostgresLeases(postgres_url, "A", gateway, TIMING)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def _terminate(url: str, gateway: str) -> None:
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (f"intercloud-ha-{gateway}",),
        )


def test_claim_renew_expire_and_take_over(leases):
    a, b = leases("gw-a"), leases("gw-b")
    assert a.claim("gw-a", None, TIMING) == 1
    assert b.claim("gw-b", None, TIMING) is None
    assert a.claim("gw-a", 1, TIMING) == 1  # renewal keeps the token
    assert a.claim("gw-a", None, TIMING) is None  # a claim without the token is a takeover
    time.sleep(TIMING.ttl_s + 0.1)  # expiry by the database's clock
    assert b.claim("gw-b", None, TIMING) == 2
    assert a.claim("gw-a", 1, TIMING) is None  # the old term does not come back
    view, gateways = b.view()
    assert view.holder == "gw-b" and view.token == 2
    assert view.last_failover_ms is not None and view.last_failover_ms >= TIMING.ttl_s * 1000
    assert [(g["name"], g["role"]) for g in gateways] == [("gw-a", "standby"), ("gw-b", "active")]


def test_a_gone_session_is_taken_over_after_orphan_s_not_at_once(leases, postgres_url):
    a, b = leases("gw-a"), leases("gw-b")
    sent = time.monotonic()  # the database stamps renewed_at after this ...
    assert a.claim("gw-a", None, TIMING) == 1
    renewed = time.monotonic()  # ... and before this
    _terminate(postgres_url, "gw-a")
    time.sleep(0.1)  # the backend exits
    asked = time.monotonic()
    assert b.claim("gw-b", None, TIMING) is None  # A could still be forwarding
    # ... and B is told when it could win: orphan_s after A's renewal, not the TTL
    assert b.chance_in is not None
    assert sent + TIMING.orphan_s - 0.05 <= time.monotonic() + b.chance_in
    assert asked + b.chance_in <= renewed + TIMING.orphan_s + 0.05
    time.sleep(max(0.0, renewed + TIMING.orphan_s + 0.05 - time.monotonic()))
    assert b.claim("gw-b", None, TIMING) == 2
    assert b.chance_in is None  # it won
    assert time.monotonic() - sent < TIMING.ttl_s  # before the lease's expiry


def test_a_live_session_is_not_taken_over_before_expiry(leases):
    a, b = leases("gw-a"), leases("gw-b")
    assert a.claim("gw-a", None, TIMING) == 1
    renewed = time.monotonic()
    time.sleep(TIMING.orphan_s + 0.05)
    assert b.claim("gw-b", None, TIMING) is None  # A's session lives: only expiry counts
    assert b.chance_in is not None and 0.0 < b.chance_in <= TIMING.ttl_s - TIMING.orphan_s
    time.sleep(max(0.0, renewed + TIMING.ttl_s + 0.05 - time.monotonic()))
    assert b.claim("gw-b", None, TIMING) == 2


def test_renewal_survives_a_reconnect_and_release_hands_over(leases, postgres_url):
    a, b = leases("gw-a"), leases("gw-b")
    assert a.claim("gw-a", None, TIMING) == 1
    _terminate(postgres_url, "gw-a")
    with pytest.raises(OperationalError):  # its session was killed under it
        a.claim("gw-a", 1, TIMING)
    assert a.claim("gw-a", 1, TIMING) == 1  # a new connection, the same term
    a.release("gw-a", 1)
    assert b.claim("gw-b", None, TIMING) == 2


REMOTE, OTHER = "02:00:00:00:00:42", "02:00:00:00:00:ab"


def test_remote_macs_are_recorded_only_by_the_holder_with_its_token(leases):
    a, b = leases("gw-a"), leases("gw-b")
    assert a.macs() == {}  # nothing recorded yet
    assert a.claim("gw-a", None, TIMING) == 1
    assert a.save_macs("gw-a", 1, {"icb1": [REMOTE]})
    assert b.macs() == {"icb1": [REMOTE]}
    assert not b.save_macs("gw-b", 1, {"icb1": [OTHER]})  # not the holder
    assert not a.save_macs("gw-a", 0, {"icb1": [OTHER]})  # not its token
    a.release("gw-a", 1)
    assert not a.save_macs("gw-a", 1, {"icb1": [OTHER]})  # released
    assert b.claim("gw-b", None, TIMING) == 2
    assert b.macs() == {"icb1": [REMOTE]}  # the old active's list, for the new one to announce
    assert b.save_macs("gw-b", 2, {"icb1": [OTHER], "icb2": []})
    assert not a.save_macs("gw-a", 1, {"icb1": [REMOTE]})  # the old term cannot overwrite
    assert a.macs() == {"icb1": [OTHER]}


def test_a_bad_row_of_remote_macs_is_dropped_on_read(leases, postgres_url):
    a = leases("gw-a")
    assert a.claim("gw-a", None, TIMING) == 1
    assert a.save_macs("gw-a", 1, {"icb1": [REMOTE]})
    row = '{"icb1": ["02:00:00:00:00:42", "01:00:5e:00:00:01", "x; reboot"], "a b": ["%s"]}'
    dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:  # as someone with write access could
        conn.execute("UPDATE gateway_macs SET macs = %s::json", (row % OTHER,))
    assert a.macs() == {"icb1": [REMOTE]}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("""UPDATE gateway_macs SET macs = '"icb1"'::json""")
    assert a.macs() == {}


def test_reading_remote_macs_survives_a_connection_that_died_meanwhile(leases, postgres_url):
    """A cut link restored leaves the connection dead until used: a take-over's read of the
    list must not fail on it (the new active would announce nothing)."""
    a = leases("gw-a")
    assert a.claim("gw-a", None, TIMING) == 1
    assert a.save_macs("gw-a", 1, {"icb1": [REMOTE]})
    assert a.macs() == {"icb1": [REMOTE]}  # both connections open now
    _terminate(postgres_url, "gw-a")
    assert a.macs() == {"icb1": [REMOTE]}  # once more on a new connection
    _terminate(postgres_url, "gw-a")
    with pytest.raises(Exception):  # noqa: B017 - a write is not repeated: the caller decides
        a.save_macs("gw-a", 1, {"icb1": [OTHER]})
