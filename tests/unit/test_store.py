"""The store against both databases it supports: SQLite and a real PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, select, update

from intercloud.errors import Conflict
from intercloud.service import replicas, topology, views
from intercloud.service.user import list_expansions
from intercloud.store import Store
from intercloud.store import models as m

pytestmark = pytest.mark.postgres


@pytest.fixture
def store(database_url):
    s = Store(database_url)
    s.migrate()
    yield s
    s.dispose()


def test_migrate_creates_schema_and_is_idempotent(store):
    store.migrate()
    assert {
        "peers",
        "links",
        "agreements",
        "expansions",
        "expansion_targets",
        "replicas",
        "vni_allocations",
        "federation_nonces",
        "alembic_version",
    } <= store.tables()


def test_round_trip_json_and_relations(store):
    with store.session() as s:
        p = m.Peer(
            name="B",
            federation_url="http://198.18.2.2:8700",
            underlay_endpoint="198.18.2.2",
            key="k" * 32,
        )
        s.add(p)
        s.flush()
        s.add(
            m.Agreement(
                peer=p, projects=["p1", "p2"], peer_projects=["*"], max_expansions_per_project=3
            )
        )
    with store.session() as s:
        peer = s.scalar(select(m.Peer).where(m.Peer.name == "B"))
        assert peer.agreement.projects == ["p1", "p2"]
        assert peer.agreement.peer_projects == ["*"]


def test_duplicate_name_is_a_conflict_and_changes_nothing(store):
    with store.session() as s:
        s.add(
            m.Peer(
                name="B", federation_url="http://x", underlay_endpoint="198.18.2.2", key="k" * 32
            )
        )
    with pytest.raises(Conflict), store.session() as s:
        s.add(
            m.Peer(
                name="B", federation_url="http://y", underlay_endpoint="198.18.3.2", key="k" * 32
            )
        )
    with store.session() as s:
        assert [p.federation_url for p in s.scalars(select(m.Peer))] == ["http://x"]


def test_a_vni_is_allocated_once(store):
    with store.session() as s:
        s.add(m.VniAllocation(vni=100, owner="t:1"))
    with pytest.raises(Conflict), store.session() as s:
        s.add(m.VniAllocation(vni=100, owner="r:7"))


def test_nonce_replay_is_refused(store):
    with store.session() as s:
        p = m.Peer(
            name="B", federation_url="http://x", underlay_endpoint="198.18.2.2", key="k" * 32
        )
        s.add(p)
        s.flush()
        s.add(m.Nonce(peer_id=p.id, nonce="ab" * 16))
        pid = p.id
    with pytest.raises(Conflict), store.session() as s:
        s.add(m.Nonce(peer_id=pid, nonce="ab" * 16))


def test_upgrade_keeps_existing_links_and_marks_them_unencrypted(database_url):
    from sqlalchemy import text

    old = Store(database_url)
    old.migrate("0001")
    with old.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO peers (name, federation_url, underlay_endpoint, key, created_at) "
                "VALUES ('B', 'http://198.18.2.2:8700', '198.18.2.2', :k, CURRENT_TIMESTAMP)"
            ),
            {"k": "k" * 32},
        )
        conn.execute(
            text(
                "INSERT INTO links (peer_id, local_endpoint, remote_endpoint, tunnel_type, mtu, "
                "enabled, state, reason, created_at) VALUES ((SELECT id FROM peers), '198.18.1.2', "
                "'198.18.2.2', 'vxlan', 1500, true, 'up', '', CURRENT_TIMESTAMP)"
            )
        )
    old.migrate()
    with old.session() as s:
        link = s.scalar(select(m.Link))
        assert (link.peer.name, link.encrypted, link.psk, link.ike_policy) == (
            "B",
            False,
            None,
            None,
        )
    old.dispose()


def _peer(name: str, address: str) -> m.Peer:
    return m.Peer(
        name=name, federation_url=f"http://{address}:8700", underlay_endpoint=address, key="k" * 32
    )


def test_generation_counts_commits_that_write(store):
    """What the API's read cache keys on: a writing commit bumps it, a read or a rolled-back
    write does not."""
    start = store.generation
    with store.session() as s:
        s.add(_peer("g1", "192.0.2.1"))
    after_add = store.generation
    assert after_add > start
    with store.session() as s:
        s.scalars(select(m.Peer)).all()
    assert store.generation == after_add
    with store.session() as s:  # a statement, no ORM flush
        s.execute(update(m.Peer).where(m.Peer.name == "g1").values(federation_url="http://x"))
    after_update = store.generation
    assert after_update > after_add
    with pytest.raises(RuntimeError), store.session() as s:
        s.add(_peer("g2", "192.0.2.2"))
        s.flush()
        raise RuntimeError("abandon")
    assert store.generation == after_update
    with store.session() as s:
        assert s.scalar(select(m.Peer).where(m.Peer.name == "g2")) is None
    # a write no view shows (the federation nonces) commits without bumping it
    with store.session() as s:
        peer_id = s.scalar(select(m.Peer.id).where(m.Peer.name == "g1"))
    with store.session(shown=False) as s:
        s.add(m.Nonce(peer_id=peer_id, nonce="n-1"))
    assert store.generation == after_update
    with store.session() as s:
        assert s.scalar(select(m.Nonce.nonce).where(m.Nonce.peer_id == peer_id)) == "n-1"


def test_concurrent_writers_all_commit_and_a_failed_write_ends_its_turn(store):
    """Writers of one process take turns (SQLite: a lock instead of its busy handler's
    sleeps); a write that fails (a conflict, an exception) must not keep the turn."""
    with pytest.raises(Conflict), store.session() as s:
        s.add(_peer("dup", "192.0.2.9"))
        s.add(_peer("dup", "192.0.2.9"))
    with pytest.raises(RuntimeError), store.session() as s:
        s.add(_peer("gone", "192.0.2.8"))
        s.flush()
        raise RuntimeError("abandon")
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            with store.session() as s:
                s.add(_peer(f"w{i}", f"192.0.2.{10 + i}"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(20)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert time.monotonic() - started < 4  # nobody waited out a turn left behind (5 s)
    with store.session() as s:
        names = set(s.scalars(select(m.Peer.name)))
    assert {f"w{i}" for i in range(20)} <= names
    assert "gone" not in names and "dup" not in names


def test_a_writer_waiting_for_a_connection_does_not_hold_the_turn(tmp_path):
    """A session whose first statement writes takes a connection before the writers' turn:
    holding the turn while waiting for the pool deadlocked against writers that held every
    connection and waited for the turn (SQLite; PostgreSQL writers take no turn)."""
    store = Store(f"sqlite:///{tmp_path / 'turns.db'}")
    store.migrate()
    assert store._takes_turns
    pool = store.engine.pool
    held = [store.engine.connect() for _ in range(pool.size() + pool._max_overflow)]
    done = threading.Event()

    def write_first() -> None:
        with store.session() as s:
            s.execute(update(m.Peer).where(m.Peer.name == "nobody").values(key="k" * 32))
        done.set()

    writer = threading.Thread(target=write_first)
    writer.start()
    try:
        time.sleep(0.3)  # the writer now waits for a connection
        assert not done.is_set()
        free = []

        def probe() -> None:
            free.append(store._writer.acquire(timeout=1))
            if free[-1]:
                store._writer.release()

        prober = threading.Thread(target=probe)
        prober.start()
        prober.join()
        assert free == [True], "the waiting writer holds the turn"
    finally:
        for c in held:
            c.close()
    writer.join(timeout=10)
    assert done.is_set()
    store.dispose()


def test_a_session_that_writes_one_table_bumps_that_tables_generation_only(store):
    """The reconciler writes the links' checks on every pass with shown="links": the views
    that name the table see it, the others stay current; a session that writes more than it
    said (another table, or a statement) is seen by every view."""
    with store.session() as s:
        s.add(_peer("t1", "192.0.2.1"))
        s.flush()
        s.add(m.Link(peer_id=s.scalar(select(m.Peer.id)), local_endpoint="x", remote_endpoint="y"))
    base, links = store.generations(), store.generations(("links",))
    with store.session(shown="links") as s:
        s.scalar(select(m.Link)).checked_at = datetime.now(UTC)
    assert store.generations() == base
    assert store.generations(("links",)) != links
    assert store.generations(("links",))[0] == base[0]
    with store.session(shown="links") as s:  # says links, writes a peer too
        s.scalar(select(m.Link)).reason = "r"
        s.scalar(select(m.Peer)).federation_url = "http://y"
    assert store.generations() != base
    base = store.generations()
    with store.session(shown="links") as s:  # a statement: not told apart by table
        s.execute(update(m.Link).values(reason="s"))
    assert store.generations() != base
    links = store.generations(("links",))
    with store.session(shown="links") as s:  # reads only: nothing bumped
        s.scalars(select(m.Link)).all()
    assert store.generations(("links",)) == links


def _statements(store: Store, use) -> int:
    """How many SQL statements `use(session)` sends."""
    sent: list[str] = []

    def count(_conn, _cursor, statement, *_rest) -> None:
        sent.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        with store.session() as s:
            use(s)
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    return len(sent)


def _networks(store: Store, count: int, peers: list[m.Peer]) -> None:
    """`count` expansions to every peer, and `count` replicas of peers' networks, each of its
    own project."""
    with store.session() as s:
        start = s.scalar(select(func.count()).select_from(m.Expansion)) or 0
        for i in range(start, start + count):
            e = m.Expansion(uid=f"e{i}", project="p1", network=f"n{i}", cidr="10.0.0.0/24")
            e.targets = [m.Target(peer_id=p.id) for p in peers]
            project = m.ReplicatedProject(name=f"B-q{i}", peer_id=peers[0].id, origin_name=f"q{i}")
            s.add_all([e, project])
            s.flush()
            s.add(
                m.Replica(
                    uid=f"r{i}", peer_id=peers[0].id, project_id=project.id, network=f"n{i}",
                    cidr="10.0.0.0/24",
                )
            )  # fmt: skip


@pytest.mark.parametrize("listing", ["project", "replicas", "topology"])
def test_listing_networks_costs_the_same_queries_for_3_or_30(store, listing):
    """The views read each expansion's targets, peers and agreements and each replica's peer
    and project: loaded for all rows at once, not one lazy load per row (a project of 3,333
    expansions: 3,333 queries per list, rebuilt after every write)."""
    with store.session() as s:
        peers = [_peer("B", "198.18.2.2"), _peer("C", "198.18.3.2")]
        s.add_all(peers)
        s.flush()
        s.add(m.Agreement(peer=peers[0], projects=["*"], peer_projects=["*"]))
        peer_ids = [p.id for p in peers]
    _networks(store, 3, peers)

    def listed(s) -> int:
        if listing == "project":
            return len(list_expansions(s, "p1"))
        if listing == "replicas":
            return len([views.replica(r) for r in replicas.list_all(s)])
        return len(topology.build(s, "A")["expansions"])

    counted: list[int] = []
    few = _statements(store, lambda s: counted.append(listed(s)))
    with store.session() as s:
        peers = list(s.scalars(select(m.Peer).where(m.Peer.id.in_(peer_ids))))
    _networks(store, 27, peers)
    assert _statements(store, lambda s: counted.append(listed(s))) == few
    assert counted[1] == 10 * counted[0] > 0  # the 30 were listed


def test_a_vni_offer_starts_at_the_lowest_free_and_names_only_the_vnis_in_use_in_it(store):
    from intercloud.domain import owners
    from intercloud.service import allocations

    me = owners.target(1)
    with store.session() as s:
        for vni in (*range(100, 110), 111, 120, 5000):
            s.add(m.VniAllocation(vni=vni, owner=f"a:{vni}"))
        s.add(m.VniAllocation(vni=110, owner=str(me)))  # its own: free for it
    with store.session() as s:
        assert allocations.offer(s, me, 100, 200, width=16) == (110, 125, [111, 120])
        assert allocations.offer(s, owners.target(2), 100, 200, width=4) == (112, 115, [])
        assert allocations.offer(s, me, 4990, 5005) == (4990, 5005, [5000])  # capped at high
        assert allocations.offer(s, me, 5000, 5000 + 1)[0] == 5001
        assert allocations.offer(s, me, 90, 99, width=4) == (90, 93, [])
        with pytest.raises(Conflict):
            allocations.offer(s, me, 100, 109)  # all ten held by others
        assert len(allocations.offer(s, me, 1, 100000)[2]) <= allocations.OFFER_WIDTH


def test_the_reconcilers_rows_decode_json_on_both_databases(store):
    """store/rows.py reads SQLite's JSON as text and decodes it itself, PostgreSQL's as its
    driver decodes it: the same values either way."""
    from intercloud.store.rows import ExpansionRows

    with store.session() as s:
        p = m.Peer(
            name="B", federation_url="http://x", underlay_endpoint="198.18.2.2", key="k" * 32
        )
        e = m.Expansion(uid="u1", project="p1", network="n1", cidr="10.0.0.0/24",
                        paths=[{"between": ["A", "B"], "state": "direct", "via": []}])  # fmt: skip
        e.targets = [
            m.Target(
                peer=p,
                members_sent=["A", "B"],
                addressing_sent={"gateway": "10.0.0.1"},
                peer_ports=[["aa:bb:cc:00:00:01", "10.0.0.5"]],
                direct=[],
            )  # fmt: skip
        ]
        s.add(e)
    (row,) = ExpansionRows(store).all()
    (t,) = row.targets
    assert row.paths == [{"between": ["A", "B"], "state": "direct", "via": []}]
    assert (t.members_sent, t.addressing_sent, t.direct) == (
        ["A", "B"],
        {"gateway": "10.0.0.1"},
        [],
    )
    assert t.peer_ports == [["aa:bb:cc:00:00:01", "10.0.0.5"]]
    assert (t.relays_sent, t.pool) == (None, None)
