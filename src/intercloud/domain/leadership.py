"""Gateway leadership: which of a cloud's gateways is active (holds the cloud's underlay
address, its tunnel ports and SAs, runs the writing passes). Pure: the clock and the lease
store are passed in (store/leases.py is the PostgreSQL one, tests use fakes).

The rules that keep two gateways from forwarding at once:
- The lease's expiry is judged by the database's clock only (`now()` in SQL); a gateway never
  compares its clock with another host's.
- The active renews every `renew_s`. It counts its lease from the moment it *sent* its last
  successful renewal (its own monotonic clock), which is before the database stamped it.
- It steps down (releases the address, stops forwarding) once `step_down_s` has passed since
  then without a successful renewal, whatever the database link does meanwhile (`check`,
  called by a watchdog that never waits on the database). `step_down_s < ttl_s`, and the gap
  `ttl_s - step_down_s` (at least `renew_s`) is the time the step-down itself may take.
- A standby takes the lease only when it expired, was released, or when the holder's
  database session is gone *and* the holder would have stepped down by now had it been alive
  (`orphan_s` after its last renewal, database time): a session can end while its process
  lives (a server restart, a reset connection), so a gone session alone proves nothing.
- Each takeover increments the fencing token; a gateway renews only with the token it took,
  so an old active that comes back finds the lease taken and stays standby (no flapping)."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from intercloud.domain.remote_macs import RemoteMacs
from intercloud.errors import Invalid

log = logging.getLogger("intercloud.leadership")

Clock = Callable[[], float]  # monotonic seconds


class Role(enum.StrEnum):
    STANDBY = "standby"
    ACTIVE = "active"


@dataclass(frozen=True)
class Timing:
    ttl_s: float = 1.0
    renew_s: float = 0.2
    step_down_s: float = 0.6

    def __post_init__(self) -> None:
        for key in ("ttl_s", "renew_s", "step_down_s"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or not 0.05 <= value <= 60:
                raise Invalid(f"config ha.{key}: must be 0.05-60 seconds", field=f"ha.{key}")
        if not self.renew_s < self.step_down_s < self.ttl_s:
            raise Invalid(
                "config ha.step_down_s: must be more than renew_s and less than ttl_s "
                f"(renew {self.renew_s} < step-down {self.step_down_s} < ttl {self.ttl_s})",
                field="ha.step_down_s",
            )
        if self.ttl_s - self.step_down_s < self.renew_s:
            raise Invalid(
                "config ha.ttl_s: must exceed step_down_s by at least renew_s (the time a "
                "step-down may take before the lease can go to another gateway)",
                field="ha.ttl_s",
            )

    @property
    def orphan_s(self) -> float:
        """After its last renewal, when a holder whose session is gone is taken over."""
        return (self.step_down_s + self.ttl_s) / 2


@dataclass(frozen=True)
class LeaseView:
    """What the store says of the cloud's lease (for status)."""

    holder: str | None
    token: int
    since: str | None = None  # ISO time (database clock) the holder took it
    last_failover_at: str | None = None
    last_failover_ms: int | None = None  # last renewal of the old holder -> the new claim


class LeaseStore(Protocol):
    def claim(self, gateway: str, token: int | None, timing: Timing) -> int | None:
        """Renew (`token`: the one this gateway holds) or take the lease (`token` None, or a
        renewal that failed); the token held after it, None if another gateway holds it.
        Raises on any failure to get the database's answer."""
        ...

    def release(self, gateway: str, token: int) -> None:
        """Give the lease up at once (only if `gateway` still holds it with `token`)."""
        ...

    def save_macs(self, gateway: str, token: int, macs: RemoteMacs) -> bool:
        """Record the remote MACs the active learned (domain/remote_macs.py), only while
        `gateway` holds the lease with `token`; whether it was written. Raises on failure."""
        ...

    def macs(self) -> RemoteMacs:
        """The last list an active recorded, checked (invalid entries dropped). Raises on
        failure."""
        ...


@dataclass(frozen=True)
class Change:
    """A role change the caller must act on (take over / step down), and why."""

    role: Role
    token: int
    reason: str


class Leadership:
    """One gateway's view. `tick()` every `timing.renew_s` (it may block on the database);
    `check()` often, from another thread (it never touches the store)."""

    def __init__(self, gateway: str, timing: Timing, store: LeaseStore, clock: Clock) -> None:
        self.gateway = gateway
        self.timing = timing
        self.store = store
        self.clock = clock
        self.role = Role.STANDBY
        self.token: int | None = None  # the token we hold (also while the lease is ours)
        self.renewed_at: float | None = None  # send time of the last successful claim
        self.last_error: str | None = None

    def deadline(self) -> float | None:
        """When the active must have stepped down without a further renewal (None: standby)."""
        if self.role is not Role.ACTIVE or self.renewed_at is None:
            return None
        return self.renewed_at + self.timing.step_down_s

    def check(self) -> Change | None:
        """Step down if the deadline passed."""
        deadline = self.deadline()
        if deadline is not None and self.clock() >= deadline:
            return self._step_down("no renewal within step_down_s")
        return None

    def tick(self) -> Change | None:
        """One claim and its outcome, in the caller's thread (tests; `begin`/`claimed` let a
        caller run the claim outside its lock)."""
        sent, token = self.begin()
        try:
            answer: int | None | Exception = self.store.claim(self.gateway, token, self.timing)
        except Exception as exc:  # an unreachable database is a normal event here
            answer = exc
        return self.claimed(sent, answer)

    def begin(self) -> tuple[float, int | None]:
        """(send time, token to renew with) of the next claim."""
        return self.clock(), self.token

    def claimed(self, sent: float, answer: int | None | Exception) -> Change | None:
        """Apply the store's answer to a claim sent at `sent`: a token (the lease is ours),
        None (another gateway holds it) or the exception the claim raised."""
        if isinstance(answer, Exception):
            self.last_error = type(answer).__name__
            return self.check()
        self.last_error = None
        if answer is None:
            self.token = None
            return self._step_down("the lease is held by another gateway") if self.active else None
        self.token = answer
        if self.clock() - sent >= self.timing.step_down_s:
            # the answer came too late to count on: its lease may be about to expire; the
            # next claim renews it with this token
            return self._step_down("the database answered too late") if self.active else None
        if self.renewed_at is None or sent > self.renewed_at:
            self.renewed_at = sent
        if not self.active:
            self.role = Role.ACTIVE
            return Change(Role.ACTIVE, answer, "lease taken")
        return None

    @property
    def active(self) -> bool:
        return self.role is Role.ACTIVE

    def _step_down(self, reason: str) -> Change:
        self.role = Role.STANDBY
        token = self.token or 0
        self.renewed_at = None
        return Change(Role.STANDBY, token, reason)

    def abandon(self) -> None:
        """Back to standby without a claim (taking over failed on this host); the lease, still
        ours in the store, expires for another gateway."""
        self._step_down("abandoned")
        self.token = None

    def resign(self) -> Change | None:
        """Stop being active on purpose (shutdown): the lease goes at once, if the store is
        reachable; else it expires."""
        if self.token is not None:
            try:
                self.store.release(self.gateway, self.token)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}"
        was_active = self.role is Role.ACTIVE
        change = self._step_down("shutting down") if was_active else None
        self.token = None
        return change
