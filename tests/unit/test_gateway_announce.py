"""The remote MACs across a take-over (reconciler/ha_macs.py, drivers/gateway/tenant.py,
domain/remote_macs.py): the active records what its bridges learned on their tunnel ports,
only while active and only when it changed; a new active reads the list and announces it
(again after its first pass for bridges it had not built yet); a bad row is dropped; the
RARP frame; which FDB entries count and which ports are announced on."""

from __future__ import annotations

import logging
import time

import pytest

from intercloud.domain.remote_macs import MACS_PER_BRIDGE, checked
from intercloud.drivers.gateway.fake import FakeGateway
from intercloud.drivers.gateway.tenant import (
    Link,
    learned_remote,
    rarp_announcement,
    stale_on_tenant_side,
    tenant_ports,
)
from intercloud.reconciler.ha import GatewayRole
from intercloud.reconciler.ha_macs import SAVE_EVERY
from intercloud.store import Store
from tests.unit.test_gateway_role import TIMING, RealTimeLeases, RecordingIpsec
from tests.waiting import wait_for

REMOTE = "02:00:00:00:00:42"
OTHER = "02:00:00:00:00:ab"
SAVE_PERIOD = SAVE_EVERY * TIMING.renew_s


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/a.db")
    yield s
    s.dispose()


def _role(store, leases, driver, passes=None):
    return GatewayRole(
        "A",
        "gw1",
        TIMING,
        leases,
        driver,
        store,
        ipsec=RecordingIpsec(driver.calls),
        passes=passes,
    )


def test_the_active_records_remote_macs_only_when_they_change(store):
    leases, driver = RealTimeLeases(), FakeGateway()
    driver.learned = {"icb1": [REMOTE]}
    role = _role(store, leases, driver)
    role.start()
    try:
        wait_for(lambda: leases.saves == 1, 5, 0.01, "a first record")
        assert leases.saved == {"icb1": [REMOTE]}
        time.sleep(4 * SAVE_PERIOD)
        assert leases.saves == 1  # unchanged: not written again
        driver.learned = {"icb1": [REMOTE, OTHER]}
        wait_for(lambda: leases.saves == 2, 5, 0.01, "the changed list recorded")
        assert leases.saved == {"icb1": [REMOTE, OTHER]}
    finally:
        role.stop()


def test_a_standby_records_nothing(store):
    leases, driver = RealTimeLeases(), FakeGateway()
    leases.holder, leases.token, leases.expires_at = "gw2", 7, time.monotonic() + 3600
    driver.learned = {"icb1": [REMOTE]}
    role = _role(store, leases, driver)
    role.start()
    try:
        time.sleep(4 * SAVE_PERIOD)
        role.macs.save()  # even when asked
        assert not role.active() and leases.saves == 0
    finally:
        role.stop()


def test_an_active_that_stepped_down_records_no_more(store):
    leases, driver = RealTimeLeases(), FakeGateway()
    driver.learned = {"icb1": [REMOTE]}
    role = _role(store, leases, driver)
    role.start()
    try:
        wait_for(lambda: leases.saves == 1, 5, 0.01, "a first record")
        leases.cut = True
        wait_for(lambda: not role.active(), 3, 0.01, "gw1 to step down")
        # meanwhile another gateway took the lease; gw1's link comes back
        leases.holder, leases.token = "gw2", leases.token + 1
        leases.expires_at = time.monotonic() + 3600
        leases.cut = False
        driver.learned = {"icb1": [REMOTE, OTHER]}
        time.sleep(4 * SAVE_PERIOD)
        role.macs.save()
        assert not role.active() and leases.saves == 1 and leases.saved == {"icb1": [REMOTE]}
    finally:
        role.stop()


def test_recording_failures_are_not_fatal(store, caplog):
    leases, driver = RealTimeLeases(), FakeGateway()
    driver.learned = {"icb1": [REMOTE]}
    role = _role(store, leases, driver)

    def broken() -> dict[str, list[str]]:
        raise OSError("netlink gone")

    driver.remote_macs = broken  # type: ignore[method-assign]
    role.start()
    try:
        wait_for(role.active, 3, 0.01, "gw1 active")
        time.sleep(4 * SAVE_PERIOD)
        assert role.active() and leases.saves == 0
        said = [r for r in caplog.records if "recording remote MACs failed" in r.getMessage()]
        assert len(said) == 1  # once, not at every attempt
    finally:
        role.stop()


def test_take_over_announces_the_recorded_macs_and_again_after_the_first_pass(store):
    leases, driver, passes = RealTimeLeases(), FakeGateway(), [0]
    leases.saved = {"icb1": [REMOTE], "icb9": [OTHER]}  # what the old active recorded
    driver.bridges = {"icb1"}  # icb9 is built by the first pass
    role = _role(store, leases, driver, passes=lambda: passes[0])
    role.start()
    try:
        wait_for(lambda: len(driver.announced) == 1, 3, 0.01, "an announcement")
        assert driver.announced[0] == {"icb1": [REMOTE]}
        driver.bridges.add("icb9")
        passes[0] += 1
        wait_for(lambda: len(driver.announced) == 2, 3, 0.01, "the rest after the pass")
        assert driver.announced[1] == {"icb9": [OTHER]}
        # the old list was read before this term's (empty) one replaced it
        wait_for(lambda: leases.saves == 1, 5, 0.01, "this term's record")
        assert leases.saved == {}
    finally:
        role.stop()


def test_take_over_goes_on_when_the_list_cannot_be_read(store, caplog):
    leases, driver = RealTimeLeases(), FakeGateway()

    def unreadable() -> dict[str, list[str]]:
        raise ConnectionError("reset")

    leases.macs = unreadable  # type: ignore[method-assign]
    role = _role(store, leases, driver)
    caplog.set_level(logging.WARNING, "intercloud.ha")
    role.start()
    try:
        wait_for(role.active, 3, 0.01, "gw1 active")
        wait_for(
            lambda: any("reading remote MACs failed" in r.getMessage() for r in caplog.records),
            3,
            0.01,
            "the failure said",
        )
        assert role.active() and driver.holding and driver.announced == []
    finally:
        role.stop()


def test_a_bad_row_is_dropped(caplog):
    row = {
        "icb1": [REMOTE, "01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00",
                 "02:00:00:00:00:4g", "02:00:00:00:00:42\n", 42, REMOTE],
        "bad name": [OTHER],
        "much-too-long-name": [OTHER],
        "..": [OTHER],
        "icb2": OTHER,
        "icb3": [OTHER.upper()],
        "icb4": [OTHER],
    }  # fmt: skip
    with caplog.at_level(logging.WARNING, "intercloud.ha"):
        assert checked(row, "test") == {"icb1": [REMOTE], "icb4": [OTHER]}
    assert len(caplog.records) == 1 and "dropped" in caplog.records[0].getMessage()
    assert checked(["icb1"], "test") == {} and checked(None, "test") == {}
    many = [f"02:00:00:00:{i // 256:02x}:{i % 256:02x}" for i in range(MACS_PER_BRIDGE + 5)]
    assert len(checked({"icb1": many}, "test")["icb1"]) == MACS_PER_BRIDGE


def test_rarp_frame():
    mac = bytes.fromhex("020000000042")
    frame = rarp_announcement(mac)
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == mac and frame[12:14] == b"\x80\x35"
    rarp = frame[14:42]
    assert rarp[:8] == bytes.fromhex("0001080006040003")  # Ethernet/IPv4, request reverse
    assert rarp[8:14] == mac and rarp[14:18] == b"\x00" * 4  # sender: the MAC, no address
    assert rarp[18:24] == mac and rarp[24:28] == b"\x00" * 4  # target: the same
    assert len(frame) == 60 and frame[42:] == b"\x00" * 18  # padded to the minimum


class Entry:
    """An FDB entry as pyroute2's dump gives it (ndmsg)."""

    def __init__(self, ifindex: int, mac: str, state: int, master: int | None) -> None:
        self.fields = {"ifindex": ifindex, "state": state}
        self.attrs = {"NDA_LLADDR": mac, "NDA_MASTER": master}

    def __getitem__(self, key: str) -> int:
        return self.fields[key]

    def get_attr(self, name: str) -> object:
        return self.attrs.get(name)


LINKS = {
    1: Link(1, "icb1", "bridge", None),
    2: Link(2, "icv42", "vxlan", 1),  # our tunnel port on icb1
    3: Link(3, "tap0", "veth", 1),  # the tenant side
    4: Link(4, "icb2", "bridge", None),  # a bridge without a tunnel port
    5: Link(5, "tap1", "veth", 4),
    6: Link(6, "vx9", "vxlan", 4),  # not ours (another prefix)
}
REACHABLE, STALE, PERMANENT, NOARP = 0x02, 0x04, 0x80, 0x40


def test_learned_remote_takes_what_the_bridge_learned_on_tunnel_ports_only():
    fdb = [
        Entry(2, REMOTE, REACHABLE, 1),  # learned from a peer's VM
        Entry(2, OTHER.upper(), STALE, 1),
        Entry(2, "02:00:00:00:00:99", PERMANENT, 1),  # the port's own address
        Entry(2, "02:00:00:00:00:98", NOARP, 1),  # static
        Entry(2, "02:00:00:00:00:97", REACHABLE, None),  # the VXLAN device's own (self)
        Entry(2, "01:00:5e:00:00:01", REACHABLE, 1),
        Entry(3, "02:00:00:00:00:11", REACHABLE, 1),  # a local VM
        Entry(6, "02:00:00:00:00:12", REACHABLE, 4),  # not our tunnel port
    ]
    assert learned_remote(LINKS, fdb, "icv") == {"icb1": [REMOTE, OTHER]}


def test_tenant_ports_leave_out_the_tunnel_ports():
    ports = tenant_ports(LINKS, "icv", ["icb1", "icb2", "icb7"])
    assert ports == {"icb1": ["tap0"], "icb2": ["tap1", "vx9"]}


def test_remote_macs_learned_on_a_tenant_port_are_found_for_deletion():
    fdb = [
        Entry(3, REMOTE, STALE, 1),  # learned from the old active's flood: to delete
        Entry(2, OTHER, REACHABLE, 1),  # on the tunnel port already: right
        Entry(3, "02:00:00:00:00:11", REACHABLE, 1),  # a local VM: not announced, kept
        Entry(3, OTHER, NOARP, 1),  # static: someone's choice
        Entry(5, REMOTE, REACHABLE, 4),  # another bridge: not announced there
    ]
    macs = {"icb1": [REMOTE, OTHER]}
    assert stale_on_tenant_side(LINKS, fdb, "icv", macs) == [(3, REMOTE)]
