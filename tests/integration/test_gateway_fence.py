"""Every database write of a gateway fenced by its lease token (store/fence.py), on a real
PostgreSQL with the real lease SQL (store/leases.py): a write commits only while the lease row
names this gateway with its token, and a takeover waits for a write in flight to commit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy import delete, event, select, update

from intercloud import config as config_mod
from intercloud.agent import build
from intercloud.domain.leadership import Timing
from intercloud.errors import Fenced
from intercloud.reconciler.ha import GatewayRole
from intercloud.store import Store
from intercloud.store import models as m
from intercloud.store.fence import Fence
from intercloud.store.leases import PostgresLeases, session_name
from tests.waiting import wait_for

# A short lease: the tests let it expire (by the database's clock) to take it over at once.
TIMING = Timing(ttl_s=0.3, renew_s=0.05, step_down_s=0.2)


@pytest.fixture
def cloud(postgres_url):
    """(url, make a PostgresLeases for a gateway of cloud A); the schema migrated."""
    Store(postgres_url).migrate()
    made: list[PostgresLeases] = []
    stores: list[Store] = []

    def leases(gateway: str, lock_wait: float | None = None) -> PostgresLeases:
        made.append(PostgresLeases(postgres_url, "A", gateway, TIMING, lock_wait=lock_wait))
        return made[-1]

    def store(token: int | None | str = "no fence", gateway: str = "gw-a") -> Store:
        stores.append(Store(postgres_url))
        if token != "no fence":
            stores[-1].fence = Fence("A", gateway, lambda: token)  # type: ignore[return-value]
        return stores[-1]

    yield postgres_url, leases, store
    for lease in made:
        lease.close()
    for s in stores:
        s.dispose()


def _sql(url: str, query: str, *args: object) -> list[tuple]:
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query, args).fetchall()  # type: ignore[arg-type]


def _expired(url: str) -> bool:
    return _sql(url, "SELECT expires_at <= now() FROM gateway_leases WHERE cloud = 'A'")[0][0]


def _take_over(url: str, leases) -> int:
    """gw-b takes A's lease with the real claim, once gw-a's has expired."""
    wait_for(lambda: _expired(url), 10, 0.05, "the lease to expire")
    token = leases("gw-b").claim("gw-b", None, TIMING)
    assert token is not None
    return token


def _allocate(store: Store, vni: int) -> None:
    with store.session() as s:
        s.add(m.VniAllocation(vni=vni, owner=f"o{vni}"))


def _vnis(store: Store) -> list[int]:
    with store.session() as s:
        return sorted(s.scalars(select(m.VniAllocation.vni)))


def test_writes_commit_while_the_lease_is_ours_and_are_refused_after_a_takeover(cloud):
    url, leases, store = cloud
    assert leases("gw-a").claim("gw-a", None, TIMING) == 1
    fenced = store(1)
    _allocate(fenced, 100)  # ORM flush
    with fenced.session() as s:  # a bulk UPDATE statement
        s.execute(update(m.VniAllocation).values(owner="renamed"))
    assert _vnis(fenced) == [100]
    assert _take_over(url, leases) == 2
    with pytest.raises(Fenced) as refused:
        _allocate(fenced, 101)
    assert refused.value.message == (
        "gateway gw-a is no longer the active gateway of A (lease token 1, held: gw-b token 2); "
        "write refused"
    )
    assert refused.value.active == "gw-b"
    with pytest.raises(Fenced), fenced.session() as s:  # a bulk DELETE statement too
        s.execute(delete(m.VniAllocation))
    with pytest.raises(Fenced), fenced.session() as s:  # a change to a loaded row
        s.scalars(select(m.VniAllocation)).one().owner = "stale"
    # nothing of it was committed; reads still work on the fenced-out store
    assert _vnis(fenced) == [100]
    assert _sql(url, "SELECT owner FROM vni_allocations") == [("renamed",)]
    # the new active writes, and a store without a fence is unaffected
    _allocate(store(2, "gw-b"), 102)
    _allocate(store(), 103)
    assert _vnis(fenced) == [100, 102, 103]


def test_a_standby_writes_nothing_even_with_the_row_naming_it(cloud):
    """The token callable says None once this gateway stepped down, whatever the row says."""
    url, leases, store = cloud
    assert leases("gw-a").claim("gw-a", None, TIMING) == 1
    with pytest.raises(Fenced, match=r"gw-a is not the active gateway of A \(standby"):
        _allocate(store(None), 100)
    assert _sql(url, "SELECT count(*) FROM vni_allocations") == [(0,)]


@contextmanager
def _write_in_flight(store: Store) -> Iterator[None]:
    """A write of `store` held between the fence's check and its COMMIT (the lease row
    locked) for the block's duration; committed after it."""
    locked, go = threading.Event(), threading.Event()

    def write() -> None:
        with store.session() as s:
            # the commit's own flush runs after the fence's check: the lease row is locked
            event.listen(s, "after_flush", lambda *_: (locked.set(), go.wait(30)))
            s.add(m.VniAllocation(vni=100, owner="in flight"))

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert locked.wait(30)
        yield
    finally:
        go.set()  # never leave the writer waiting
        writer.join(30)


def _claim_in_thread(
    leases, gateway: str, token: int | None, lock_wait: float | None = None
) -> tuple[threading.Thread, dict]:
    outcome: dict[str, int | None] = {}

    def claim() -> None:
        outcome["token"] = leases(gateway, lock_wait).claim(gateway, token, TIMING)

    thread = threading.Thread(target=claim)
    thread.start()
    return thread, outcome


def _waits_on_a_lock(url: str, gateway: str) -> bool:
    return _sql(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
        "AND wait_event_type = 'Lock'",
        f"intercloud-ha-{gateway}",
    ) == [(1,)]


def test_a_takeover_waits_for_a_write_in_flight_to_commit(cloud):
    """Within the claim's lock wait (here long): the write commits, then the takeover."""
    url, leases, store = cloud
    assert leases("gw-a").claim("gw-a", None, TIMING) == 1
    fenced = store(1)
    wait_for(lambda: _expired(url), 10, 0.05, "the lease to expire")
    with _write_in_flight(fenced):
        claimer, outcome = _claim_in_thread(leases, "gw-b", None, lock_wait=30)
        # the takeover's UPDATE waits on the lock the write holds ...
        wait_for(lambda: _waits_on_a_lock(url, "gw-b"), 30, 0.05, "the takeover to wait")
        assert claimer.is_alive()
        assert _sql(url, "SELECT holder, token FROM gateway_leases") == [("gw-a", 1)]
        assert _sql(url, "SELECT count(*) FROM vni_allocations") == [(0,)]
    # ... until it commits; then the takeover goes through
    claimer.join(30)
    assert outcome["token"] == 2
    assert _sql(url, "SELECT owner FROM vni_allocations") == [("in flight",)]
    assert _sql(url, "SELECT holder, token FROM gateway_leases") == [("gw-b", 2)]
    with pytest.raises(Fenced):
        _allocate(fenced, 101)


def _session(url: str, gateway: str, *statements: str) -> psycopg.Connection:
    """A session of `gateway`'s Store (its application_name) left in a transaction after
    `statements`: a gateway cut off before its COMMIT, as the server sees it."""
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    conn = psycopg.connect(dsn, application_name=session_name("A", gateway))
    for statement in statements:
        conn.execute(statement)  # type: ignore[arg-type]
    return conn


def _ended(conn: psycopg.Connection) -> bool:
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


def test_a_takeover_ends_a_write_of_the_old_term_that_never_commits(cloud):
    """gw-a cut off between its fence check and its COMMIT: its session holds the lease row
    (FOR KEY SHARE) for as long as TCP keepalive takes. The takeover waits the claim's lock
    wait, ends that session (nothing of it committed) and takes the lease."""
    url, leases, _store = cloud
    assert leases("gw-a").claim("gw-a", None, TIMING) == 1
    orphan = _session(
        url,
        "gw-a",
        "INSERT INTO vni_allocations (vni, owner) VALUES (100, 'cut off')",
        "SELECT token FROM gateway_leases WHERE cloud = 'A' FOR KEY SHARE",
    )
    try:
        assert _take_over(url, leases) == 2
        assert _ended(orphan)
        assert _sql(url, "SELECT count(*) FROM vni_allocations") == [(0,)]
        assert _sql(url, "SELECT holder, token FROM gateway_leases") == [("gw-b", 2)]
    finally:
        orphan.close()


def test_a_takeover_ends_the_old_terms_row_locks_but_not_its_reads(cloud):
    """A write of gw-a that flushed and never reached its commit (no lease lock) would hold
    its rows from the new active's passes: ended at the takeover. gw-a's reads (a standby
    serves them) and the new active's own sessions go on."""
    url, leases, store = cloud
    assert leases("gw-a").claim("gw-a", None, TIMING) == 1
    _allocate(store(), 7)
    writer = _session(url, "gw-a", "UPDATE vni_allocations SET owner = 'cut off' WHERE vni = 7")
    reader = _session(url, "gw-a", "SELECT count(*) FROM vni_allocations")
    own = _session(url, "gw-b", "INSERT INTO vni_allocations (vni, owner) VALUES (8, 'new')")
    try:
        gw_b = leases("gw-b")
        wait_for(lambda: _expired(url), 10, 0.05, "the lease to expire")
        assert gw_b.claim("gw-b", None, TIMING) == 2
        # not at the takeover itself (the role acts first), at its first renewal
        assert not _ended(writer)
        assert gw_b.claim("gw-b", 2, TIMING) == 2
        assert _ended(writer)
        assert not _ended(reader) and not _ended(own)
        assert _sql(url, "SELECT owner FROM vni_allocations") == [("o7",)]
        freed = "UPDATE vni_allocations SET owner = 'free' WHERE vni = 7 RETURNING vni"
        assert _sql(url, freed) == [(7,)]  # the row no longer held
    finally:
        for conn in (writer, reader, own):
            conn.close()


def test_the_actives_renewal_does_not_wait_for_a_write_in_flight(cloud):
    """A renewal keeps the token: no key update, no conflict with the fence's lock."""
    url, leases, store = cloud
    assert leases("gw-a").claim("gw-a", None, TIMING) == 1
    with _write_in_flight(store(1)):
        renewer, outcome = _claim_in_thread(leases, "gw-a", 1)
        wait_for(
            lambda: not renewer.is_alive() or _waits_on_a_lock(url, "gw-a"),
            30,
            0.01,
            "the renewal to end or wait",
        )
        assert not _waits_on_a_lock(url, "gw-a")  # it ended without waiting for the write
        renewer.join(30)
        assert outcome["token"] == 1
        assert _sql(url, "SELECT count(*) FROM vni_allocations") == [(0,)]  # still in flight
    assert _sql(url, "SELECT owner FROM vni_allocations") == [("in flight",)]


def test_an_unfenced_session_writes_bookkeeping_on_a_standby(cloud):
    """A federation call's nonce (api/auth.py) is recorded by any gateway, standby too."""
    url, leases, store = cloud
    assert leases("gw-a").claim("gw-a", None, TIMING) == 1
    with store().session() as s:
        s.add(m.Peer(name="B", federation_url="https://b", underlay_endpoint="192.0.2.2", key="k"))
    peer_id = _sql(url, "SELECT id FROM peers")[0][0]
    standby = store(None, "gw-b")
    with pytest.raises(Fenced), standby.session(shown=False) as s:
        s.add(m.Nonce(peer_id=peer_id, nonce="n1"))
    with standby.session(shown=False, fenced=False) as s:
        s.add(m.Nonce(peer_id=peer_id, nonce="n2"))
    assert _sql(url, "SELECT nonce FROM federation_nonces") == [("n2",)]


def test_an_ha_agent_fences_its_store_by_its_role(postgres_url):
    """agent.build with [ha]: the store's writes follow the gateway's real lease."""
    data = {
        "agent": {
            "name": "A",
            "database": postgres_url,
            "admin_token": "x" * 16,
            "plain_http": True,
        },
        "dataplane": {"driver": "fake"},
        "ipsec": {"driver": "fake"},
        "ha": {"enabled": True, "gateway": "gw1", "address": "198.18.0.1/24", "interface": "eth1"},
    }
    ctx = build(config_mod.parse(data, env={}))
    assert ctx.ha is not None
    role: GatewayRole = ctx.ha  # type: ignore[assignment]
    try:
        with pytest.raises(Fenced, match="gw1 is not the active gateway of A"):
            _allocate(ctx.store, 100)  # standby until it holds the lease
        role.leadership.tick()  # its first claim, on the real lease SQL: active, token 1
        assert role.active() and role.leadership.token == 1
        _allocate(ctx.store, 100)
        assert _vnis(ctx.store) == [100]
    finally:
        role.leadership.store.close()  # type: ignore[attr-defined]
        ctx.store.dispose()
