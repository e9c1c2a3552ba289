"""A standby gateway's share of the IPsec phase (reconciler/connections.py `prepare`): the
connections loaded without initiating and without a write, so a take-over starts IKE at once;
the pass after a take-over waits for the exchanges it began (`settle`) and takes the links'
recorded health (reconciler/links.py) rather than asking every peer before the tunnels."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import select

from intercloud.drivers.ipsec.base import ConnectionStatus
from intercloud.drivers.ipsec.fake import FakeIpsec
from intercloud.reconciler import connections, links
from intercloud.store import Store
from intercloud.store import models as m
from tests.unit.peer_links import add_peer_link


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/a.db")
    s.migrate()
    with s.session() as session:
        for name, address in (("B", "198.18.2.2"), ("C", "198.18.3.2")):
            add_peer_link(session, name, address, encrypted=name == "B")  # C needs no connection
    yield s
    s.dispose()


def _statuses(store: Store) -> list[object]:
    with store.session() as s:
        return [lk.ipsec_status for lk in s.scalars(select(m.Link).order_by(m.Link.id))]


def test_a_standby_loads_each_encrypted_links_connection_without_initiating_or_writing(store):
    ipsec = FakeIpsec()
    generations = store.generations()
    assert connections.prepare(store, ipsec, "A") == 2  # the cleartext guard, the connection
    assert ipsec.calls == [("load_connection", "link-B")]
    assert ipsec.specs["link-B"].remote == "198.18.2.2"
    assert ipsec.guarded == {"198.18.2.2"}  # a standby's kernel never sends B VXLAN in clear
    assert store.generations() == generations  # nothing written: a standby may not
    assert _statuses(store) == [None, None]
    assert connections.prepare(store, ipsec, "A") == 0  # loaded already: no change


def test_a_standby_unloads_the_connection_of_a_link_disabled_meanwhile(store):
    ipsec = FakeIpsec()
    connections.prepare(store, ipsec, "A")
    with store.session() as s:
        s.scalar(select(m.Link).where(m.Link.encrypted.is_(True))).enabled = False
    assert connections.prepare(store, ipsec, "A") == 1
    assert ipsec.calls[-1] == ("remove_connection", "link-B")
    assert ipsec.specs == {}
    assert ipsec.guarded == {"198.18.2.2"}  # disabled, still encrypted: still guarded


class Connecting(FakeIpsec):
    """IKE under way for the first `polls` reads of the status, then up."""

    def __init__(self, polls: int) -> None:
        super().__init__()
        self.polls = polls

    def connections(self) -> dict[str, ConnectionStatus]:
        if self.polls > 0:
            self.polls -= 1
            return {name: ConnectionStatus(name, "CONNECTING") for name in self.specs}
        return super().connections()


@pytest.mark.parametrize("settle", [True, False])
def test_the_pass_after_a_take_over_waits_for_the_exchange_it_began(store, settle):
    ipsec = Connecting(polls=0)
    connections.prepare(store, ipsec, "A")  # loaded while standby: the pass changes nothing
    ipsec.polls = 3
    _, ready, _ = connections.converge(store, ipsec, "A", {}, lambda: 0.0, settle=settle)
    assert ready["C"].ready  # unencrypted
    assert ready["B"].ready is settle  # without settling, IKE is still connecting
    assert _statuses(store)[0]["ike_state"] == ("ESTABLISHED" if settle else "CONNECTING")


def test_the_take_over_pass_takes_each_links_recorded_health(store):
    with store.session() as s:
        b, c = s.scalars(select(m.Link).order_by(m.Link.id))
        b.state, c.state, c.reason = "up", "down", "peer C: connection refused"
        ids = b.id, c.id
    health = links.recorded_health(SimpleNamespace(store=store))
    assert health[ids[0]].answers
    assert not health[ids[1]].answers and health[ids[1]].said == "peer C: connection refused"
