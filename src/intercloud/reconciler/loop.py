"""The reconciler thread: a pass at start-up, after every change (`trigger`) and periodically,
sooner while something is still moving. What the API may ask of it is the `Reconciler`'s
public surface: trigger, request_flush, relays_applied, stats, ipsec_backend."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from intercloud import heap
from intercloud.config import Config
from intercloud.domain import text
from intercloud.drivers.cloud.base import Cloud
from intercloud.drivers.dataplane.base import Dataplane
from intercloud.drivers.ipsec.base import Ipsec
from intercloud.drivers.ipsec.noop import NO_IPSEC
from intercloud.drivers.probe.base import NO_PROBES
from intercloud.errors import Fenced, IntercloudError
from intercloud.federation.peers import Federation
from intercloud.metrics import Metrics
from intercloud.reconciler import connections, cycle, links
from intercloud.reconciler.memory import Memory
from intercloud.reconciler.pacing import Pace, link_retry
from intercloud.reconciler.parts import LAST_ERROR_MAX, Clock, Parts, PassResult, TunnelProbes
from intercloud.store import Store
from intercloud.store.db import describe

log = logging.getLogger("intercloud.reconciler")


@dataclass
class Stats:
    passes: int = 0
    last_pass_at: str | None = None
    last_changes: int = 0
    changes_since_start: int = 0
    last_error: str | None = None
    last_duration_ms: float = 0.0
    last_phases_ms: dict[str, float] = field(default_factory=dict)  # where the last pass went
    # the cyclic collector's time during the last pass, whichever thread set it off (it stops
    # them all); None where it is not timed (heap.COLLECTOR not started)
    last_gc_ms: float | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Reconciler:
    """Makes the host match the desired state and writes observed status back. Idempotent: on
    a converged host a pass makes no driver call that changes anything."""

    def __init__(
        self,
        cfg: Config,
        store: Store,
        cloud: Cloud,
        dataplane: Dataplane,
        federation: Federation,
        ipsec: Ipsec = NO_IPSEC,
        *,
        clock: Clock = time.monotonic,
        metrics: Metrics | None = None,
        probes: TunnelProbes = NO_PROBES,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.cloud = cloud
        self.dataplane = dataplane
        self.federation = federation
        self.ipsec = ipsec
        self.clock = clock
        self.metrics = metrics or federation.metrics  # one registry for the agent
        self.probes = probes
        self.stats = Stats()
        self.memory = Memory()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._urgent = threading.Event()  # a take-over or stop: no gap before the next pass
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # gateway HA (reconciler/ha.py): a standby gateway makes no writing pass
        self.may_write: Callable[[], bool] = lambda: True

    @property
    def ipsec_backend(self) -> str | None:
        return self.memory.ipsec_backend

    def request_flush(self, replica_id: int) -> None:
        self.memory.flush_requests.add(replica_id)

    def relays_applied(self, replica_id: int) -> list[list[str]] | None:
        """The pairs our data plane relays for a replica as of the last clean pass (None: no
        such pass since we started, so we cannot tell)."""
        applied = self.memory.relays_applied
        return None if applied is None else applied.get(replica_id, [])

    def recent_moves(self, expansion_id: int) -> list[dict]:
        return list(self.memory.moves.get(expansion_id, []))

    def trigger(self) -> None:
        self._wake.set()

    def took_over(self) -> None:
        """This gateway became active (HA): a pass now, which waits for the IKE exchanges
        the take-over initiated, so that it raises the tunnel ports itself."""
        self.memory.taking_over = True
        self._urgent.set()
        self._wake.set()

    def start(self) -> None:
        # a change the next pass must see (a VM's port tagged on br-int): pass now, not later
        self.dataplane.on_change(self.trigger)
        self._thread = threading.Thread(target=self._loop, name="reconciler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._urgent.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self.federation.close()

    def _loop(self) -> None:
        pace = Pace()
        while not self._stop.is_set():
            started = time.monotonic()
            result = self.reconcile_once()
            wait = pace.after(result, self.cfg.agent.reconcile_interval, time.monotonic() - started)
            self.rest(wait, result.links_down, gap=pace.gap)

    def rest(self, seconds: float, links_down: bool, *, gap: float = 0.0) -> str:
        """Wait until the next pass: `seconds`, or less if triggered (but not before `gap`),
        stopped, or (while `links_down`) a link is back: asked every link_retry seconds by a
        health call of its own, so that a peer that is away costs no pass over every
        expansion. Says which."""
        now = time.monotonic()
        deadline, hold = now + seconds, now + min(gap, seconds)
        why = "due"
        while (left := deadline - time.monotonic()) > 0:
            if links_down:
                left = min(left, link_retry(links.coming_up(self.memory, self.clock())))
            if self._wake.wait(timeout=left):
                why = "stopped" if self._stop.is_set() else "triggered"
                if why == "triggered":
                    self._urgent.wait(timeout=max(0.0, hold - time.monotonic()))
                break
            if links_down and time.monotonic() < deadline and self._link_back():
                why = "link back"
                break
        self._wake.clear()
        if not self._stop.is_set():
            self._urgent.clear()
        return why

    def _link_back(self) -> bool:
        with self._lock:
            if not self.may_write():  # no longer the active gateway: a pass says what next
                return True
            try:
                return links.back(self._parts(), self.memory)
            except Exception as exc:  # the pass that follows reports it properly
                log.warning("watching links that are down failed: %s", describe(exc))
                return True

    def _parts(self) -> Parts:
        return Parts(
            self.cfg,
            self.store,
            self.cloud,
            self.dataplane,
            self.ipsec,
            self.federation,
            self.clock,
            self.metrics,
            self.probes,
        )

    def reconcile_once(self) -> PassResult:
        with self._lock:
            if not self.may_write():  # a standby: the active's passes do the work
                self._prepare()
                return PassResult()
            started, timer = self.clock(), time.perf_counter()
            collected = heap.COLLECTOR.total
            result = PassResult()
            failed = 0
            parts = self._parts()
            try:
                cycle.run(parts, self.memory, result)
                self.stats.last_error = result.summary()
            except Exception as exc:  # the loop must survive anything; say what happened
                what = describe(exc)  # a database error's text can quote a key or PSK
                if isinstance(exc, Fenced):  # we lost the lease: the next pass checks the role
                    log.warning("reconciler pass stopped: %s", exc.message)
                elif isinstance(exc, SQLAlchemyError | IntercloudError):  # says what: one line
                    log.error("reconciler pass failed: %s", what)
                else:
                    log.exception("reconciler pass failed")
                self.stats.last_error = text.clean(what, LAST_ERROR_MAX)
                result.settled = False
                failed = 1
            self._count(result, started, collected)
            errors = len(set(result.errors)) + failed
            self.metrics.passed(time.perf_counter() - timer, result.changes, errors)
            return result

    def _prepare(self) -> None:
        """A standby loads the IPsec connections (no SA, nothing written): taking over then
        starts IKE with every peer at once. Failing here costs only that head start."""
        try:
            changes = connections.prepare(self.store, self.ipsec, self.cfg.agent.name)
        except Exception as exc:  # the active's work is not ours: one line, next time again
            log.warning("standby: preparing IPsec connections failed: %s", describe(exc))
            return
        if changes:
            log.info("standby: %d IPsec connection change(s) prepared", changes)

    def _count(self, result: PassResult, started: float, collected: float) -> None:
        self.stats.passes += 1
        self.stats.last_pass_at = datetime.now(UTC).isoformat()
        self.stats.last_changes = result.changes
        self.stats.changes_since_start += result.changes
        self.stats.last_duration_ms = round((self.clock() - started) * 1000, 1)
        self.stats.last_phases_ms = result.phases_ms
        gc_ms = (heap.COLLECTOR.total - collected) * 1000
        self.stats.last_gc_ms = round(gc_ms, 1) if heap.COLLECTOR.watching else None
