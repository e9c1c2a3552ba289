"""Gateway leadership (domain/leadership.py) with a fake clock and a fake lease store that
follows the PostgreSQL store's rules (store/leases.py: one atomic claim, judged by the
database's clock, here the same fake clock)."""

from __future__ import annotations

import pytest

from intercloud.config import parse
from intercloud.domain.leadership import Leadership, Role, Timing
from intercloud.errors import Invalid

TIMING = Timing(ttl_s=1.0, renew_s=0.2, step_down_s=0.6)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Cut(Exception):
    pass


class FakeLeases:
    """The lease row of one cloud. `cut` holds the gateways whose database link is down (their
    claims raise); `gone` those whose database session ended."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.holder: str | None = None
        self.token = 0
        self.expires_at = 0.0
        self.renewed_at: float | None = None
        self.cut: set[str] = set()
        self.gone: set[str] = set()
        self.delay = 0.0  # seconds each claim takes to answer

    def claim(self, gateway: str, token: int | None, timing: Timing) -> int | None:
        if gateway in self.cut:
            raise Cut("connection timed out")
        now = self.clock.now
        renewal = self.holder == gateway and token == self.token
        orphan = (
            self.holder in self.gone
            and self.renewed_at is not None
            and now >= self.renewed_at + timing.orphan_s
        )
        if not (renewal or self.holder is None or self.expires_at <= now or orphan):
            self.clock.now += self.delay
            return None
        if not renewal:
            self.token += 1
        self.holder, self.renewed_at, self.expires_at = gateway, now, now + timing.ttl_s
        self.gone.discard(gateway)
        self.clock.now += self.delay
        return self.token

    def release(self, gateway: str, token: int) -> None:
        if gateway in self.cut:
            raise Cut("connection timed out")
        if self.holder == gateway and self.token == token:
            self.holder, self.expires_at = None, self.clock.now

    def save_macs(self, gateway: str, token: int, macs: dict[str, list[str]]) -> bool:
        if gateway in self.cut:
            raise Cut("connection timed out")
        return self.holder == gateway and self.token == token

    def macs(self) -> dict[str, list[str]]:
        return {}


@pytest.fixture
def world():
    clock = Clock()
    leases = FakeLeases(clock)
    a = Leadership("gw-a", TIMING, leases, clock)
    b = Leadership("gw-b", TIMING, leases, clock)
    return clock, leases, a, b


def run(clock, gateways, seconds, step=0.01, ticking=None):
    """Advance `seconds`: every gateway in `ticking` (all by default) claims every renew_s,
    every gateway checks its deadline every `step`; returns the sampled (time, actives)."""
    ticking = gateways if ticking is None else ticking
    next_tick = {g.gateway: clock.now for g in gateways}
    samples = []
    end = clock.now + seconds
    while clock.now < end:
        for g in gateways:
            if g in ticking and clock.now >= next_tick[g.gateway]:
                g.tick()
                next_tick[g.gateway] = clock.now + g.timing.renew_s
            g.check()
        samples.append((clock.now, [g.gateway for g in gateways if g.active]))
        clock.now = round(clock.now + step, 6)
    return samples


def test_first_claim_takes_the_lease_and_the_other_stays_standby(world):
    clock, leases, a, b = world
    change = a.tick()
    assert change is not None and change.role is Role.ACTIVE and change.token == 1
    assert b.tick() is None and b.role is Role.STANDBY
    assert leases.holder == "gw-a"


def test_the_active_renews_and_keeps_its_token(world):
    clock, leases, a, b = world
    samples = run(clock, [a, b], 5.0)
    assert all(actives == ["gw-a"] for _, actives in samples[1:])
    assert a.token == 1 and leases.token == 1


def test_cut_active_steps_down_before_its_lease_expires_and_never_two_actives(world):
    clock, leases, a, b = world
    run(clock, [a, b], 1.0)
    leases.cut.add("gw-a")
    cut_at = clock.now
    samples = run(clock, [a, b], 3.0)
    assert all(len(actives) <= 1 for _, actives in samples)
    a_down = next(t for t, actives in samples if "gw-a" not in actives)
    b_up = next(t for t, actives in samples if "gw-b" in actives)
    assert a_down - cut_at <= TIMING.step_down_s + 0.01
    assert a_down < b_up  # a gap, not an overlap
    assert b_up - cut_at >= TIMING.ttl_s - TIMING.renew_s - 0.01  # B waited for the expiry
    assert b.token == 2


def test_the_old_active_coming_back_stays_standby(world):
    clock, leases, a, b = world
    run(clock, [a, b], 1.0)
    leases.cut.add("gw-a")
    run(clock, [a, b], 3.0)
    leases.cut.clear()
    samples = run(clock, [a, b], 3.0)
    assert all(actives == ["gw-b"] for _, actives in samples)
    assert a.token is None and b.token == 2


def test_fencing_token_grows_with_every_takeover(world):
    clock, leases, a, b = world
    tokens = []
    for loser in ("gw-a", "gw-b", "gw-a"):
        run(clock, [a, b], 1.0)
        tokens.append(leases.token)
        leases.cut = {loser}
        run(clock, [a, b], 2.0)
        leases.cut = set()
    tokens.append(leases.token)
    assert tokens == sorted(set(tokens)) and tokens[-1] == 4


def test_a_gone_session_is_taken_over_once_its_holder_must_have_stepped_down(world):
    clock, leases, a, b = world
    run(clock, [a, b], 1.0)
    leases.gone.add("gw-a")  # its process died: the session ended, no more claims
    died = clock.now
    samples = run(clock, [a, b], 2.0, ticking=[b])
    b_up = next(t for t, actives in samples if "gw-b" in actives)
    a_down = next(t for t, actives in samples if "gw-a" not in actives)
    assert all(len(actives) <= 1 for _, actives in samples)
    assert b_up - died < TIMING.ttl_s - 0.1  # sooner than the expiry ...
    assert b_up > a_down  # ... and after A's own deadline, had A been alive


def test_a_late_answer_does_not_extend_the_active(world):
    clock, leases, a, b = world
    a.tick()
    leases.delay = TIMING.step_down_s + 0.1
    change = a.tick()
    assert change is not None and change.role is Role.STANDBY
    leases.delay = 0.0
    assert a.tick().role is Role.ACTIVE  # the lease was still ours: renewed with its token
    assert a.token == 1


def test_resign_hands_over_at_once(world):
    clock, leases, a, b = world
    a.tick()
    b.tick()
    assert a.resign().role is Role.STANDBY
    assert b.tick().role is Role.ACTIVE and b.token == 2


def test_resign_with_the_database_cut_still_steps_down(world):
    clock, leases, a, b = world
    a.tick()
    leases.cut.add("gw-a")
    assert a.resign().role is Role.STANDBY
    assert b.tick() is None  # the lease runs out first
    clock.now += TIMING.ttl_s
    assert b.tick().role is Role.ACTIVE


@pytest.mark.parametrize(
    "ttl,renew,step_down",
    [(1.0, 0.2, 1.0), (1.0, 0.6, 0.6), (1.0, 0.3, 0.8), (0.0, 0.2, 0.6), (100, 1, 2)],
)
def test_timings_out_of_order_are_refused(ttl, renew, step_down):
    with pytest.raises(Invalid) as err:
        Timing(ttl_s=ttl, renew_s=renew, step_down_s=step_down)
    assert err.value.field.startswith("ha.")


def _config(ha: dict, database: str = "postgresql+psycopg://db/intercloud") -> dict:
    agent = {"admin_token": "x" * 16, "plain_http": True, "database": database}
    return {"agent": agent, "ha": ha}


HA = {"enabled": True, "gateway": "gw1", "address": "198.18.0.1/24", "interface": "eth1"}


def test_config_ha_section():
    cfg = parse(_config(HA), env={})
    assert cfg.ha.gateway == "gw1" and cfg.ha.timing() == TIMING
    assert parse(_config({}), env={}).ha.enabled is False


@pytest.mark.parametrize(
    "change,field",
    [
        ({"address": "198.18.0.1"}, "ha.address"),
        ({"address": "198.18.0.0/24"}, "ha.address"),
        ({"address": "198.18.0.1/24; rm"}, "ha.address"),
        ({"interface": "eth1 up"}, "ha.interface"),
        ({"interface": "x" * 16}, "ha.interface"),
        ({"gateway": ""}, "ha.gateway"),
        ({"step_down_s": 2.0}, "ha.step_down_s"),
        ({"lease": 3}, "ha.lease"),
    ],
)
def test_config_ha_refuses_bad_values(change, field):
    with pytest.raises(Invalid) as err:
        parse(_config({**HA, **change}), env={})
    assert err.value.field == field


def test_config_ha_refuses_sqlite_in_one_line():
    with pytest.raises(Invalid) as err:
        parse(_config(HA, database="sqlite:///x.db"), env={})
    assert err.value.field == "agent.database" and "\n" not in err.value.message
    assert "PostgreSQL" in err.value.message
