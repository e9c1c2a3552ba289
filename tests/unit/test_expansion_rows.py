"""The reconciler's rows of every expansion and target (store/rows.py): what they hold, read
once per pass while nothing is written, again after a write, and never across passes."""

from __future__ import annotations

from intercloud.store import Store
from intercloud.store import models as m
from intercloud.store.rows import ExpansionRows


def _store(tmp_path) -> Store:
    store = Store(f"sqlite:///{tmp_path}/rows.db")
    store.migrate()
    with store.session() as s:
        b = m.Peer(name="B", federation_url="https://b:8700", underlay_endpoint="198.18.2.2",
                   key="kb" * 16)  # fmt: skip
        c = m.Peer(name="C", federation_url="https://c:8700", underlay_endpoint="198.18.3.2",
                   key="kc" * 16)  # fmt: skip
        s.add_all([b, c])
        s.flush()
        s.add(m.Agreement(peer_id=b.id, default_rate_mbit=50.0))
        e1 = m.Expansion(uid="u1", project="p1", network="n1", cidr="10.0.0.0/24")
        port = ["aa:bb:cc:00:00:01", "10.0.0.5"]
        e1.targets = [
            m.Target(peer=c, vni=1001, status="active", peer_ports=[port]),
            m.Target(peer=b, vni=1002, status="pending", relays_sent=[["B", "C"]]),
        ]
        e2 = m.Expansion(uid="u2", project="p2", network="n2", cidr="10.1.0.0/24",
                         rate_mbit=10.0, deleting=True)  # fmt: skip
        e2.targets = [m.Target(peer=b)]
        s.add_all([e1, e2])
    return store


def test_rows_hold_each_expansion_with_its_targets_by_id(tmp_path):
    store = _store(tmp_path)
    rows = ExpansionRows(store)
    e1, e2 = rows.all()
    assert (e1.uid, e1.project, e1.network, e1.deleting) == ("u1", "p1", "n1", False)
    assert [(t.peer, t.vni, t.status) for t in e1.targets] == [
        ("C", 1001, "active"),
        ("B", 1002, "pending"),
    ]
    c, b = e1.targets
    assert (b.peer_url, b.peer_key, b.relays_sent) == ("https://b:8700", "kb" * 16, [["B", "C"]])
    assert c.peer_ports == [["aa:bb:cc:00:00:01", "10.0.0.5"]]
    # the expansion's own limit, else the agreement's default (none for C: no agreement)
    assert (e1.rate_to(b), e1.rate_to(c), e2.rate_to(e2.targets[0])) == (50.0, None, 10.0)
    assert [e.uid for e in rows.live()] == ["u1"]  # u2 is being deleted
    store.dispose()


def test_rows_are_read_again_only_after_a_write_and_at_each_pass(tmp_path):
    store = _store(tmp_path)
    rows = ExpansionRows(store)
    rows.all()
    rows.live()
    rows.all()
    assert rows.reads == 1  # nothing written: one read for all the walks
    with store.session() as s:
        s.get(m.Target, 2).vni = 1003
    assert [t.vni for t in rows.all()[0].targets] == [1001, 1003]
    assert rows.reads == 2
    with store.session() as s:  # a session that only reads outdates nothing
        s.get(m.Target, 2)
    rows.all()
    assert rows.reads == 2
    rows.new_pass()  # another process may have written meanwhile (an HA take-over)
    rows.all()
    assert rows.reads == 3
    store.dispose()


def test_json_values_are_decoded_once_per_read_and_shared_by_equal_texts(tmp_path):
    """SQLite gives JSON as text: a read decodes each distinct text once (most targets hold
    the same few), so rows with the same text share one value; NULL stays None."""
    store = _store(tmp_path)
    with store.session() as s:
        b = s.query(m.Peer).filter_by(name="B").one()
        for i in range(3):
            e = m.Expansion(uid=f"s{i}", project="p1", network=f"s{i}", cidr="10.2.0.0/24")
            e.targets = [m.Target(peer=b, members_sent=["A", "B"], relays_sent=None)]
            s.add(e)
    rows = ExpansionRows(store)
    shared = [e.targets[0] for e in rows.all() if e.uid.startswith("s")]
    assert [t.members_sent for t in shared] == [["A", "B"]] * 3
    assert shared[0].members_sent is shared[1].members_sent is shared[2].members_sent
    assert [t.relays_sent for t in shared] == [None] * 3
    first = shared[0].members_sent
    rows.new_pass()
    again = next(e.targets[0] for e in rows.all() if e.uid == "s0")
    assert again.members_sent == first and again.members_sent is not first  # one read's only
    store.dispose()
