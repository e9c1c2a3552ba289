"""Gateway HA around the leadership: the role's threads acting through a driver
(reconciler/ha.py), the standby's refusal of writes (api/standby.py), the gratuitous ARP
frame and `intercloud status`'s HA part."""

from __future__ import annotations

import json
import time

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from intercloud.api.standby import StandbyRefusesWrites
from intercloud.cli import status as cli_status
from intercloud.domain.leadership import Timing
from intercloud.domain.remote_macs import checked
from intercloud.drivers.gateway.fake import FakeGateway
from intercloud.drivers.gateway.linux import arp_announcement
from intercloud.drivers.ipsec.noop import NoopIpsec
from intercloud.reconciler.ha import GatewayRole
from intercloud.store import Store
from tests.waiting import wait_for

# the gap ttl - step_down is wide: a loaded machine's scheduling delays stay inside it
TIMING = Timing(ttl_s=1.5, renew_s=0.05, step_down_s=0.3)


class RealTimeLeases:
    """The lease rules of tests/unit/test_leadership.py's fake, on the monotonic clock."""

    def __init__(self) -> None:
        self.holder: str | None = None
        self.token = 0
        self.expires_at = 0.0
        self.cut = False
        self.released: list[tuple[str, int]] = []
        self.saved: object = None  # gateway_macs.macs, as a JSON round trip
        self.saves = 0

    def save_macs(self, gateway: str, token: int, macs: dict[str, list[str]]) -> bool:
        if self.cut:
            raise ConnectionError("cut")
        if not (self.holder == gateway and self.token == token):
            return False  # fenced, as the SQL does
        self.saved, self.saves = json.loads(json.dumps(macs)), self.saves + 1
        return True

    def macs(self) -> dict[str, list[str]]:
        if self.cut:
            raise ConnectionError("cut")
        return checked(self.saved, "the fake")

    def claim(self, gateway: str, token: int | None, timing: Timing) -> int | None:
        if self.cut:
            raise ConnectionError("cut")
        now = time.monotonic()
        renewal = self.holder == gateway and token == self.token
        if not (renewal or self.holder is None or self.expires_at <= now):
            return None
        if not renewal:
            self.token += 1
        self.holder, self.expires_at = gateway, now + timing.ttl_s
        return self.token

    def release(self, gateway: str, token: int) -> None:
        self.released.append((gateway, token))
        if self.holder == gateway and self.token == token:
            self.holder = None


class FailingGateway(FakeGateway):
    def take_over(self) -> None:
        self.calls.append("take_over")
        raise OSError("no /dev/net/tun")


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/a.db")
    yield s
    s.dispose()


class RecordingIpsec(NoopIpsec):
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def initiate_all(self) -> list[str]:
        self.calls.append("initiate_all")
        return ["link-B"]

    def terminate_all(self) -> None:
        self.calls.append("terminate_all")


def _role(store, leases, driver, triggered):
    return GatewayRole(
        "A",
        "gw1",
        TIMING,
        leases,
        driver,
        store,
        on_active=lambda: triggered.append(1),
        ipsec=RecordingIpsec(driver.calls),
    )


def test_role_takes_over_steps_down_when_cut_and_hands_over_on_stop(store):
    leases, driver, triggered = RealTimeLeases(), FakeGateway(), []
    role = _role(store, leases, driver, triggered)
    role.start()
    try:
        # active as soon as the lease is taken; the take-over's actions follow (a pass last)
        wait_for(lambda: role.active() and triggered, 3, 0.01, "gw1 active, its pass asked")
        assert driver.holding
        # standby at start (SAs of an earlier run dropped); address first, then IKE
        assert driver.calls == [
            "step_down",
            "terminate_all",
            "take_over",
            "terminate_all",
            "initiate_all",
        ]
        leases.cut = True
        cut_at = time.monotonic()
        wait_for(lambda: not driver.holding, 3, 0.01, "gw1 to step down")
        assert driver.calls[-2:] == ["step_down", "terminate_all"]
        # the watchdog stepped down by the deadline, before the lease (ttl) could go
        assert time.monotonic() - cut_at < TIMING.ttl_s
        assert not role.active()
        leases.cut = False
        wait_for(role.active, 3, 0.01, "gw1 to renew its own lease again")
    finally:
        role.stop()
    assert not driver.holding and leases.released == [("gw1", 1)] and leases.holder is None


def test_a_new_active_initiates_again_after_its_first_pass(store):
    leases, driver, passes = RealTimeLeases(), FakeGateway(), [0]
    role = GatewayRole(
        "A",
        "gw1",
        TIMING,
        leases,
        driver,
        store,
        ipsec=RecordingIpsec(driver.calls),
        passes=lambda: passes[0],
    )
    role.start()
    try:
        wait_for(role.active, 3, 0.01, "gw1 active")
        time.sleep(0.2)
        assert driver.calls.count("initiate_all") == 1  # at take-over; the pass is to come
        passes[0] += 1  # the first pass loaded the connections
        wait_for(lambda: driver.calls.count("initiate_all") == 2, 3, 0.01, "a second initiate")
    finally:
        role.stop()


def test_a_failed_take_over_leaves_the_gateway_standby(store):
    leases, driver = RealTimeLeases(), FailingGateway()
    role = _role(store, leases, driver, [])
    role.start()
    try:
        wait_for(lambda: driver.calls.count("take_over") >= 1, 3, 0.01, "a take-over")
        time.sleep(0.1)
        assert not role.active() and "initiate_all" not in driver.calls
        assert driver.calls[-2:] == ["step_down", "terminate_all"]
    finally:
        role.stop()


def test_status_without_the_lease_tables_still_answers(store):
    role = _role(store, RealTimeLeases(), FakeGateway(), [])
    st = role.status()
    assert st["gateway"] == "gw1" and st["role"] == "standby" and st["active"] is None
    assert st["database"] != "ok"  # no PostgreSQL here: said, not raised


class FakeHa:
    gateway = "gw2"

    def __init__(self, active: bool) -> None:
        self._active = active

    def active(self) -> bool:
        return self._active

    def holder(self) -> str | None:
        return "gw1"

    def status(self) -> dict:
        return {}

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def _client(ha) -> TestClient:
    app = FastAPI()

    @app.get("/v1/peers")
    def read() -> list:
        return []

    @app.post("/v1/peers")
    def write() -> dict:
        return {"written": True}

    app.add_middleware(StandbyRefusesWrites, ha=ha)
    return TestClient(app)


def test_a_standby_serves_reads_and_refuses_writes_naming_the_active():
    client = _client(FakeHa(active=False))
    assert client.get("/v1/peers").status_code == 200
    answer = client.post("/v1/peers", json={})
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    body = answer.json()
    assert body["active"] == "gw1" and body["error"]["code"] == "standby"
    assert "gw2 is standby" in body["error"]["message"]


@pytest.mark.parametrize("ha", [FakeHa(active=True), None])
def test_the_active_and_a_single_gateway_take_writes(ha):
    assert _client(ha).post("/v1/peers", json={}).json() == {"written": True}


def test_gratuitous_arp_frame():
    mac = bytes.fromhex("020000000001")
    frame = arp_announcement(mac, bytes([198, 18, 0, 1]))
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == mac and frame[12:14] == b"\x08\x06"
    arp = frame[14:]
    assert arp[:8] == bytes.fromhex("0001080006040001")  # Ethernet/IPv4, request
    assert arp[8:14] == mac and arp[14:18] == arp[24:28] == bytes([198, 18, 0, 1])
    assert len(frame) == 42


def test_cli_status_prints_the_gateways(capsys):
    cli_status._print_ha(
        {
            "gateway": "gw2",
            "role": "active",
            "since": "2026-12-04T23:00:00+00:00",
            "active": "gw2",
            "last_failover": {"at": "2026-12-04T23:00:00+00:00", "duration_ms": 812},
            "database": "ok",
            "gateways": [
                {"name": "gw1", "role": "standby", "seen_s_ago": 0.1},
                {"name": "gw2", "role": "active", "seen_s_ago": 0.0},
            ],
        }
    )
    out = capsys.readouterr().out
    assert "High availability" in out and "812 ms" in out
    assert "gw1" in out and "standby" in out
