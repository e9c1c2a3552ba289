"""The remote MACs across a take-over (docs/ha.md). The tenant segment's switch learned every
remote VM's MAC on the active gateway's port; a standby never forwarded, so it knows none of
them. So the active records what its bridges learned on their tunnel ports in the cloud's
database (about once a second, only when it changed, fenced by its lease token), and a gateway
that takes over reads that list and announces each MAC on its tenant side (drivers/gateway:
one RARP per MAC), so local VMs' frames to remote VMs come to it at once instead of after the
switch's MAC ageing.

- `renewed()` is called by the `ha-renew` thread after each renewal that keeps it active: it
  only counts; every SAVE_EVERY-th one wakes the `ha-macs` thread, which reads the bridges and
  writes the database on a connection of its own (a slow write never delays a renewal, and
  the watchdog never waits on any of it);
- `took_over()` starts `ha-announce`: read the list (the claim just succeeded, so the database
  answers; bounded by the connection's statement timeout), announce it; bridges the new active
  had not built yet (a standby that was never active builds them in its first pass) are
  announced again after that pass."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from intercloud.domain.leadership import Clock, LeaseStore
from intercloud.domain.remote_macs import RemoteMacs
from intercloud.drivers.gateway.base import GatewayDriver
from intercloud.store.db import describe

log = logging.getLogger("intercloud.ha")

SAVE_EVERY = 5  # renewals (every 0.2 s by default): about once a second
AFTER_PASS_WAIT = 30.0  # how long a new active waits for its first pass


def await_pass(passes: Callable[[], int], before: int, stop: threading.Event, clock: Clock) -> bool:
    """Wait until a writing pass ran since the count was `before` (or AFTER_PASS_WAIT passed);
    False if `stop` was set meanwhile."""
    deadline = clock() + AFTER_PASS_WAIT
    while passes() <= before and clock() < deadline:
        if stop.wait(0.05):
            return False
    return True


class RemoteMacSharing:
    def __init__(
        self,
        gateway: str,
        leases: LeaseStore,
        driver: GatewayDriver,
        held: Callable[[], int | None],
        stop: threading.Event,
        clock: Clock,
        passes: Callable[[], int] | None = None,
    ) -> None:
        self.gateway = gateway
        self.leases = leases
        self.driver = driver
        self.held = held  # the token while active, else None
        self.stop = stop
        self.clock = clock
        self.passes = passes
        self.saved: tuple[int, RemoteMacs] | None = None  # (token, list) last written
        self._renewals = 0
        self._due = threading.Event()
        self._read = threading.Event()  # the list of the last term read: may be replaced
        self._read.set()
        self._failing = False

    # ---- the active: record
    def renewed(self) -> None:
        self._renewals += 1
        if self._renewals % SAVE_EVERY == 0:
            self.wake()

    def start(self) -> None:
        threading.Thread(target=self._keep_saving, name="ha-macs", daemon=True).start()

    def wake(self) -> None:
        """Wake the `ha-macs` thread (to end it: after setting `stop`)."""
        self._due.set()

    def _keep_saving(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            if self.stop.is_set():
                return
            self.save()

    def save(self) -> None:
        """Write what the bridges learned, if it changed since the last write of this term."""
        token = self.held()
        if token is None or not self._read.is_set():
            return
        try:
            macs = self.driver.remote_macs()
            if self.saved == (token, macs):
                return
            if self.leases.save_macs(self.gateway, token, macs):
                self.saved = (token, macs)
        except Exception as exc:  # said once until it works again; the next one tries again
            if not self._failing:
                log.warning(
                    "gateway %s: recording remote MACs failed: %s", self.gateway, describe(exc)
                )
            self._failing = True
            return
        if self._failing:
            log.info("gateway %s: recording remote MACs works again", self.gateway)
        self._failing = False

    # ---- a new active: announce
    def took_over(self, before: int) -> None:
        """After a take-over; `before`: the count of writing passes then."""
        self._read.clear()  # keep the last term's list until it is read
        threading.Thread(
            target=self._announce, args=(before,), name="ha-announce", daemon=True
        ).start()

    def _announce(self, before: int) -> None:
        try:
            macs = self.leases.macs()
        except Exception as exc:  # nothing to announce: VMs fall back on ARP
            log.warning("gateway %s: reading remote MACs failed: %s", self.gateway, describe(exc))
            return
        finally:
            self._read.set()
        if not macs:
            log.info("gateway %s: no remote MACs recorded to announce", self.gateway)
            return
        done = self._announce_now(macs)
        missing = {bridge: m for bridge, m in macs.items() if bridge not in done}
        if not missing or self.passes is None:
            return
        if await_pass(self.passes, before, self.stop, self.clock):
            self._announce_now(missing)

    def _announce_now(self, macs: RemoteMacs) -> set[str]:
        if self.held() is None:
            return set(macs)  # stepped down meanwhile: nothing more to do
        try:
            return set(self.driver.announce(macs))
        except Exception as exc:
            log.warning(
                "gateway %s: announcing remote MACs failed: %s", self.gateway, describe(exc)
            )
            return set()
