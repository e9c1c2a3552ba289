"""Which peers the cleartext guard covers (drivers/ipsec/cleartext_guard.py): every encrypted
link's tunnel address, only with kernel-libipsec, and a bad address never spares the others.
The rules in a real kernel: tests/integration/test_cleartext_guard.py."""

from __future__ import annotations

import logging

import pytest

from intercloud.drivers.ipsec.cleartext_guard import wanted
from intercloud.drivers.ipsec.fake import FakeIpsec
from intercloud.drivers.ipsec.strongswan import StrongswanIpsec
from intercloud.errors import DriverError
from intercloud.reconciler import connections
from intercloud.store import Store
from intercloud.store import models as m
from tests.unit.peer_links import add_peer_link
from tests.unit.test_ipsec_strongswan import FakeVici


class RecordingGuard:
    def __init__(self) -> None:
        self.given: list[set[str]] = []

    def ensure(self, destinations) -> bool:
        self.given.append(set(destinations))
        return True


def test_wanted_keeps_addresses_and_leaves_out_what_is_not_one(caplog):
    with caplog.at_level(logging.ERROR, "intercloud.ipsec"):
        got = wanted(["198.18.2.2", "2001:db8::2", "198.18.2.2; reboot", ""], 4789)
    assert got == {("198.18.2.2", 4789), ("2001:db8::2", 4789)}
    assert "'198.18.2.2; reboot' is no IP address" in caplog.text


@pytest.mark.parametrize("port", [0, 65536, "4789", True])
def test_wanted_refuses_a_port_out_of_range(port):
    with pytest.raises(DriverError, match="VXLAN port"):
        wanted(["198.18.2.2"], port)


@pytest.mark.parametrize(
    ("backend", "guarded"), [("kernel-libipsec", {"198.18.2.2"}), ("kernel", set())]
)
def test_strongswan_guards_only_when_its_esp_can_fall_through_to_clear(backend, guarded):
    guard = RecordingGuard()
    plugins = ("charon", backend, "vici") if backend != "kernel" else ("charon", "vici")
    vici = FakeVici(plugins=plugins)
    driver = StrongswanIpsec("/x", session_factory=lambda: vici, events=False, guard=guard)
    driver.ensure_guard({"198.18.2.2"})
    assert guard.given == [guarded]  # kernel ESP: leftovers removed, nothing guarded


def test_no_guard_configured_changes_nothing():
    driver = StrongswanIpsec("/x", session_factory=FakeVici, events=False)
    assert driver.ensure_guard({"198.18.2.2"}) is False


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/a.db")
    s.migrate()
    links = [  # (peer, address, encrypted, enabled, the peer's own tunnel address behind NAT)
        ("B", "198.18.2.2", True, True, None),
        ("C", "198.18.3.2", False, True, None),
        ("D", "198.18.4.2", True, False, None),
        ("E", "198.18.5.2", True, True, "10.0.5.2"),
    ]
    with s.session() as session:
        for name, address, encrypted, enabled, inner in links:
            add_peer_link(
                session, name, address, encrypted=encrypted, enabled=enabled, tunnel_endpoint=inner
            )
    yield s
    s.dispose()


def test_a_pass_guards_every_encrypted_links_tunnel_address_and_no_other(store):
    ipsec = FakeIpsec()
    connections.converge(store, ipsec, "A", {}, lambda: 0.0)
    # B; D although disabled (its ports may still exist); E at the address its VXLAN goes to.
    assert ipsec.guarded == {"198.18.2.2", "198.18.4.2", "10.0.5.2"}
    with store.session() as s:
        s.get(m.Link, 1).encrypted = False
    connections.converge(store, ipsec, "A", {}, lambda: 0.0)
    assert ipsec.guarded == {"198.18.4.2", "10.0.5.2"}
