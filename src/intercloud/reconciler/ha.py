"""Gateway HA at run time: the leadership (domain/leadership.py) driven by two threads, and
the host acting on its role through the gateway driver.

- `ha-renew` claims the lease every renew_s (it may block on the database: a cut link holds
  it until the lease connection's TCP timeout);
- `ha-watchdog` checks the step-down deadline every few tens of milliseconds and never touches
  the database, so a blocked claim cannot keep a cut-off active forwarding;
- `ha-macs` records the remote MACs the active learned, `ha-announce` announces them after a
  take-over (reconciler/ha_macs.py).
Role changes happen under one lock, each logged as one line."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from intercloud.config import Config
from intercloud.domain.leadership import Change, Clock, Leadership, LeaseStore, Role, Timing
from intercloud.drivers.gateway.base import GatewayDriver
from intercloud.drivers.ipsec.base import Ipsec
from intercloud.drivers.ipsec.noop import NO_IPSEC
from intercloud.reconciler.ha_macs import RemoteMacSharing, await_pass
from intercloud.store import Store
from intercloud.store.db import describe
from intercloud.store.leases import lease_view

log = logging.getLogger("intercloud.ha")

WATCH_EVERY = 0.02  # seconds between deadline checks (a fraction of any step-down time)
# a standby told when its claim could win claims just after (never sooner than this apart)
CHANCE_MARGIN = 0.005
CHANCE_MIN_WAIT = 0.02


class GatewayRole:
    def __init__(
        self,
        cloud: str,
        gateway: str,
        timing: Timing,
        leases: LeaseStore,
        driver: GatewayDriver,
        store: Store,
        *,
        on_active: Callable[[], None] = lambda: None,
        ipsec: Ipsec = NO_IPSEC,
        passes: Callable[[], int] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.cloud = cloud
        self.leadership = Leadership(gateway, timing, leases, clock)
        self.driver = driver
        self.store = store
        self.on_active = on_active
        self.ipsec = ipsec
        self.passes = passes  # the reconciler's count of writing passes
        self.clock = clock
        self.since = datetime.now(UTC).isoformat()
        self.last_takeover_ms: float | None = None  # this gateway's own take-over actions
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.macs = RemoteMacSharing(
            gateway, leases, driver, self._held, self._stop, clock, passes=passes
        )

    @property
    def gateway(self) -> str:
        return self.leadership.gateway

    def active(self) -> bool:
        return self.leadership.active

    def _held(self) -> int | None:
        """The lease token while active (read without the lock: the store fences by it)."""
        return self.leadership.token if self.leadership.active else None

    def start(self) -> None:
        with self._lock:
            self._stand_down()  # whatever a previous run left: standby until elected
        for target, name in ((self._renew, "ha-renew"), (self._watch, "ha-watchdog")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self.macs.start()  # not joined at stop: a slow write must not delay the hand-over
        log.info("gateway %s of %s: standby (starting)", self.gateway, self.cloud)

    def stop(self) -> None:
        """Step down and hand the lease over at once (the standby need not wait for expiry)."""
        self._stop.set()
        self.macs.wake()
        for thread in self._threads:
            thread.join(timeout=5)
        with self._lock:
            change = self.leadership.resign()
            if change is not None:
                self._act(change)

    def _renew(self) -> None:
        timing = self.leadership.timing
        while not self._stop.is_set():
            with self._lock:
                sent, token = self.leadership.begin()
            answer: int | None | Exception
            try:
                answer = self.leadership.store.claim(self.gateway, token, timing)
            except Exception as exc:  # the database unreachable: the deadline decides
                answer = exc
            with self._lock:
                if self._stop.is_set():
                    return
                change = self.leadership.claimed(sent, answer)
                if change is not None:
                    self._act(change)
                elif self.leadership.active:
                    self.macs.renewed()
                wait = sent + timing.renew_s - self.clock()
                chance = getattr(self.leadership.store, "chance_in", None)  # PostgresLeases'
                if not self.leadership.active and isinstance(chance, float):
                    wait = min(wait, max(CHANCE_MIN_WAIT, chance + CHANCE_MARGIN))
            self._stop.wait(max(0.0, wait))

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_EVERY):
            with self._lock:
                change = self.leadership.check()
                if change is not None:
                    self._act(change)

    def _act(self, change: Change) -> None:
        started = self.clock()
        if change.role is Role.ACTIVE:
            try:
                self.driver.take_over()
            except Exception as exc:
                # cannot hold the address: not active; the lease expires for another gateway
                log.error("gateway %s: take-over failed (%s); standby", self.gateway, describe(exc))
                self.leadership.abandon()
                self._stand_down()
                return
            before = self.passes() if self.passes is not None else 0
            self.macs.took_over(before)
            self._drop_stale_sas()
            self._initiate()
            self.last_takeover_ms = round((self.clock() - started) * 1000, 1)
        else:
            self._stand_down()
        self.since = datetime.now(UTC).isoformat()
        log.warning(
            "gateway %s of %s: %s (token %d, %s; %.0f ms)",
            self.gateway,
            self.cloud,
            change.role.value,
            change.token,
            change.reason,
            (self.clock() - started) * 1000,
        )
        if change.role is Role.ACTIVE:
            before = self.passes() if self.passes is not None else 0
            self.on_active()
            if self.passes is not None:
                threading.Thread(
                    target=self._initiate_after_pass, args=(before,), name="ha-ike", daemon=True
                ).start()

    def _initiate_after_pass(self, before: int) -> None:
        """A standby that was never active has no connection loaded (it makes no pass): the
        first pass loads them, and a responder's are not initiated by it. Initiate them."""
        assert self.passes is not None
        if not await_pass(self.passes, before, self._stop, self.clock):
            return
        with self._lock:
            if self.leadership.active:
                self._initiate()

    def _stand_down(self) -> None:
        """The address and tunnel ports first (that is what stops forwarding), then the SAs:
        stale ones would keep a later take-over of this gateway from initiating."""
        try:
            self.driver.step_down()
        except Exception as exc:  # the address goes first (a file closed); say what failed after
            log.error("gateway %s: step-down: %s", self.gateway, describe(exc))
        # charon away: its SAs cannot carry anything without the address
        self._terminate_sas("terminating SAs")

    def _drop_stale_sas(self) -> None:
        """SAs this charon began while standby are stale: a pass begun while active and stuck
        on a cut link can initiate after the step-down, without the address to send from.
        charon would send again only at its next retransmit (4 s): drop them, initiate anew."""
        self._terminate_sas("dropping stale SAs")  # the initiation, or the pass, tries anyway

    def _terminate_sas(self, what: str) -> None:
        try:
            self.ipsec.terminate_all()
        except Exception as exc:  # one line: the caller goes on either way
            log.warning("gateway %s: %s failed: %s", self.gateway, what, describe(exc))

    def _initiate(self) -> None:
        """IKE with every peer at once: their SAs are with the gateway that was active."""
        try:
            names = self.ipsec.initiate_all()
        except Exception as exc:  # the reconciler's pass tries again
            log.warning("gateway %s: initiating IKE failed: %s", self.gateway, describe(exc))
            return
        if names:
            log.info("gateway %s: initiated IKE: %s", self.gateway, ", ".join(sorted(names)))

    def status(self) -> dict[str, Any]:
        """`ha` of /v1/status: this gateway, its role, the cloud's active one and gateways."""
        out: dict[str, Any] = {
            "gateway": self.gateway,
            "role": self.leadership.role.value,
            "since": self.since,
            "holds_address": self.driver.holds_address(),
            "token": self.leadership.token,
            "database": self.leadership.last_error or "ok",
            "active": None,
            "last_failover": None,
            "gateways": [],
        }
        try:
            with self.store.session(shown=False) as s:
                view, gateways = lease_view(s.execute, self.cloud)
        except Exception as exc:  # status must answer with the database gone
            out["database"] = describe(exc)
            return out
        out["active"] = view.holder
        out["gateways"] = gateways
        if view.last_failover_ms is not None:
            out["last_failover"] = {
                "at": view.last_failover_at,
                "duration_ms": view.last_failover_ms,
            }
        return out

    def holder(self) -> str | None:
        """The active gateway as the database says (None: unknown or none)."""
        try:
            with self.store.session(shown=False) as s:
                return lease_view(s.execute, self.cloud)[0].holder
        except Exception:  # the database unreachable: we cannot name it
            return None


def from_config(
    cfg: Config,
    store: Store,
    ipsec: Ipsec,
    on_active: Callable[[], None],
    passes: Callable[[], int],
) -> GatewayRole | None:
    """The gateway role of an agent whose [ha] is enabled (None: HA off, the only gateway)."""
    if not cfg.ha.enabled:
        return None
    from intercloud.drivers.gateway.linux import LinuxGateway
    from intercloud.store.leases import PostgresLeases

    timing = cfg.ha.timing()
    return GatewayRole(
        cfg.agent.name,
        cfg.ha.gateway,
        timing,
        PostgresLeases(cfg.agent.database, cfg.agent.name, cfg.ha.gateway, timing),
        LinuxGateway(cfg.dataplane.prefix, cfg.ha.address, cfg.ha.interface),
        store,
        on_active=on_active,
        ipsec=ipsec,
        passes=passes,
    )
