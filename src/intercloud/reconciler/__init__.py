"""Make the host match the desired state and write observed status back.

Runs at start-up, after every change (trigger) and periodically. Idempotent: on a converged
host a pass makes no driver call that changes anything."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from intercloud.config import Config
from intercloud.domain import naming, text
from intercloud.domain import plan as planner
from intercloud.drivers.cloud.base import Cloud, ReplicaSync
from intercloud.drivers.dataplane.base import Dataplane
from intercloud.drivers.ipsec.base import Ipsec
from intercloud.drivers.ipsec.noop import NO_IPSEC
from intercloud.errors import IntercloudError, PeerError
from intercloud.federation import answers
from intercloud.federation.client import FederationClient
from intercloud.reconciler import addressing, mesh, routes, sync, tunnels
from intercloud.reconciler.desired import LinkView, NetworkWant, TunnelWant, build
from intercloud.reconciler.mesh import REPLICAS_WITH_ADJACENCIES
from intercloud.service import budget, views
from intercloud.store import Store
from intercloud.store import models as m
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

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# How soon to pass again when something is still moving, instead of reconcile_interval.
RETRY_PENDING = 0.3  # an expansion waits for its peer: it is usually a fraction of a second
RETRY_LINK_DOWN = 2.0  # a link is down: check again soon, without hammering the peer
RETRY_CONNECTING = 0.5  # ... and sooner while it is new or just went down
FAST_RETRY_WINDOW = 10.0
DISABLED = "disabled by the administrator"
HEALTH_TIMEOUT = 1.5  # a peer slower than this to answer its health check counts as down
HEALTH_FRESH = 2.0  # a health answer younger than this is not asked again
PEER_REFRESH = 60.0  # how often active expansions' replicas are re-checked with the peer
LAST_ERROR_MAX = 2048


@dataclass
class PassResult:
    changes: int = 0
    settled: bool = True
    links_down: bool = False
    retry_soon: bool = False  # a link is coming up
    errors: list[str] = field(default_factory=list)
    # what peers did wrong this pass (contained to their own objects; not the data plane's)
    peer_errors: list[str] = field(default_factory=list)

    def summary(self) -> str | None:
        said = list(dict.fromkeys(self.errors + self.peer_errors))  # each once, in order
        return text.clean("; ".join(said), LAST_ERROR_MAX) if said else None


class Reconciler:
    def __init__(
        self,
        cfg: Config,
        store: Store,
        cloud: Cloud,
        dataplane: Dataplane,
        client: FederationClient,
        ipsec: Ipsec = NO_IPSEC,
    ) -> None:
        self.cfg = cfg
        self.ipsec = ipsec
        self.ipsec_backend: str | None = None
        self.store = store
        self.cloud = cloud
        self.dataplane = dataplane
        self.client = client
        self.stats = Stats()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._healthy_at: dict[tuple[int, str], float] = {}
        self._refreshed_at = -PEER_REFRESH
        self._confirmed_at: dict[int, float] = {}  # target id -> last confirmed with its peer
        self._flush_requests: set[int] = set()  # replica ids whose learned MACs to forget
        # expansion id -> (paths, blocked targets) our data plane last followed
        self._paths_applied: dict[int, tuple[list, frozenset]] = {}
        self._relays_applied: dict[int, list[list[str]]] | None = None  # replica id -> pairs
        self._broken_links: set[str] = set()
        self._rerouted: dict[int, routes.Blocked] = {}  # target id -> member relaying us to it
        self._flush_pending: dict[int, set[str]] = {}  # expansion id -> members to ask
        self._placeholders: dict[str, tuple] = {}  # expansion uid -> placeholders made
        self._tunnel_up_at: dict[str, float] = {}
        self._down_since: dict[str, float] = {}

    # -- loop ---------------------------------------------------------------------------------
    def request_flush(self, replica_id: int) -> None:
        self._flush_requests.add(replica_id)

    def relays_applied(self, replica_id: int) -> list[list[str]] | None:
        """The pairs our data plane relays for a replica as of the last clean pass (None: no
        such pass since we started, so we cannot tell)."""
        if self._relays_applied is None:
            return None
        return self._relays_applied.get(replica_id, [])

    def trigger(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="reconciler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def _loop(self) -> None:
        while not self._stop.is_set():
            result = self.reconcile_once()
            wait = self.cfg.agent.reconcile_interval
            if result.links_down:
                wait = min(wait, RETRY_CONNECTING if result.retry_soon else RETRY_LINK_DOWN)
            if not result.settled:
                wait = min(wait, RETRY_PENDING)
            self._wake.wait(timeout=wait)
            self._wake.clear()

    # -- one pass -----------------------------------------------------------------------------
    def reconcile_once(self) -> PassResult:
        with self._lock:
            started = time.monotonic()
            result = PassResult()
            try:
                try:
                    changes, tunnels_ok, self.ipsec_backend = tunnels.converge(
                        self.store, self.ipsec, self.cfg.agent.name, self._tunnel_up_at
                    )
                    result.changes += changes
                except IntercloudError as exc:
                    # Without IPsec status we cannot tell which tunnels may carry traffic:
                    # leave the data plane exactly as it is for this pass.
                    result.errors.append(f"IPsec: {exc.message}")
                    result.settled = False
                    tunnels_ok = None
                # A peer behind an encrypted link that is not up cannot answer (its traffic is
                # dropped until the SA is up): do not wait HEALTH_TIMEOUT to learn that.
                unready = {p for p, o in (tunnels_ok or {}).items() if not o.ready}
                health = self._check_links(result, skip=unready)
                down = self._write_link_states(health, tunnels_ok or {})
                broken_links = {peer for peer, why in down.items() if why != DISABLED}
                result.links_down = bool(broken_links)
                result.retry_soon = self._recently_down(broken_links)
                self._flush_on_link_change(broken_links)
                refresh = self._refresh_due()
                replicas = self._sync_federation(result, down, self._rerouted)
                plans, rerouted = self._sync_routes(result, down)
                self._sync_mesh(result, down, refresh)
                made = self._sync_replicas(result, down)
                if tunnels_ok is not None:
                    realized = self._converge_dataplane(
                        result, replicas, tunnels_ok, down, made, (plans, rerouted)
                    )
                    self._report_direct(result, down, realized)
                self.stats.last_error = result.summary()
            except Exception as exc:  # the loop must survive anything; say what happened
                what = describe(exc)  # a database error's text can quote a key or PSK
                if isinstance(exc, SQLAlchemyError):
                    log.error("reconciler pass failed: %s", what)
                else:
                    log.exception("reconciler pass failed")
                self.stats.last_error = text.clean(what, LAST_ERROR_MAX)
                result.settled = False
            self.stats.passes += 1
            self.stats.last_pass_at = datetime.now(UTC).isoformat()
            self.stats.last_changes = result.changes
            self.stats.changes_since_start += result.changes
            self.stats.last_duration_ms = round((time.monotonic() - started) * 1000, 1)
            return result

    @property
    def _vnis(self) -> tuple[int, int]:
        """This agent's VNI range: what a peer may agree with us."""
        return self.cfg.dataplane.vni_min, self.cfg.dataplane.vni_max

    def _refresh_due(self) -> bool:
        """Whether this pass re-checks agreed state with peers (every PEER_REFRESH)."""
        now = time.monotonic()
        if now - self._refreshed_at < PEER_REFRESH:
            return False
        self._refreshed_at = now
        return True

    def _recently_down(self, down: set[str]) -> bool:
        """Whether a link went down (or was made) less than FAST_RETRY_WINDOW ago: a new or
        just-repaired link usually comes up within a second or two, so pass again soon."""
        now = time.monotonic()
        for peer in list(self._down_since):
            if peer not in down:
                del self._down_since[peer]
        for peer in down:
            self._down_since.setdefault(peer, now)
        return any(now - since < FAST_RETRY_WINDOW for since in self._down_since.values())

    def _check_links(
        self, result: PassResult, skip: frozenset[str] | set[str] = frozenset()
    ) -> dict[int, tuple[bool, str, str]]:
        """Health-check every enabled link's peer but those in `skip`: (answers, why not for
        users, why not for the administrator) by link id. The peer also tells its own address
        for our tunnel (it differs from ours for it behind NAT)."""
        with self.store.session() as s:
            todo = [
                (lk.id, lk.enabled, lk.peer.name, lk.peer.federation_url, lk.peer.key, family)
                for lk in s.scalars(select(m.Link))
                for family in [_family(lk.local_endpoint)]
            ]
        health: dict[int, tuple[bool, str, str]] = {}
        now = time.monotonic()
        for link_id, enabled, name, url, key, family in todo:
            if not enabled or name in skip:
                continue
            fresh = self._healthy_at.get((link_id, url), -HEALTH_FRESH)
            if now - fresh < HEALTH_FRESH:
                # Answered a moment ago: a pass triggered by an API change need not ask again.
                health[link_id] = (True, "", "")
                continue
            try:
                answer = answers.health(
                    name,
                    self.client.call(
                        name, url, key, "GET", "/v1/federation/health", timeout=HEALTH_TIMEOUT
                    ),
                    family,
                )
            except PeerError as exc:
                health[link_id] = (False, answers.reason(exc), answers.admin_reason(exc))
                self._healthy_at.pop((link_id, url), None)
                if isinstance(exc, answers.BadAnswer):
                    result.peer_errors.append(exc.message)
                continue
            health[link_id] = (True, "", "")
            self._healthy_at[(link_id, url)] = now
            endpoint = answer.tunnel_endpoint
            if endpoint:
                with self.store.session() as s:
                    lk = s.get(m.Link, link_id)
                    if lk is not None and lk.peer_tunnel_endpoint != endpoint:
                        log.info("link %s: peer's tunnel endpoint is %s", name, endpoint)
                        lk.peer_tunnel_endpoint = endpoint
        return health

    def _write_link_states(
        self,
        health: dict[int, tuple[bool, str, str]],
        tunnels_ok: dict[str, tunnels.TunnelOutcome],
    ) -> dict[str, str]:
        """Link state = the peer answers and, if encrypted, its IPsec SA is up. Returns the
        peers whose link is not up, with the reason users may read (the link's own reason,
        for the administrator, may say more)."""
        down: dict[str, str] = {}
        now = datetime.now(UTC)
        with self.store.session() as s:
            for lk in s.scalars(select(m.Link)):
                if not lk.enabled:
                    state, reason = "disabled", DISABLED
                else:
                    ok, said, reason = health.get(lk.id, (False, "not checked yet", ""))
                    reason = reason or said
                    outcome = tunnels_ok.get(lk.peer.name)
                    if outcome is not None and not outcome.ready:
                        # The tunnel is the cause: the peer's agent is then unreachable too.
                        ok, said, reason = False, outcome.reason, outcome.reason
                    state = "up" if ok else "down"
                    if not ok:
                        down[lk.peer.name] = said
                    lk.checked_at = now
                reason = text.clean(reason)  # it fits the column, one line in the log
                if (lk.state, lk.reason) != (state, reason):
                    log.info("link %s: %s%s", lk.peer.name, state, f" ({reason})" if reason else "")
                    lk.state, lk.reason = state, reason
                if not lk.enabled:
                    down[lk.peer.name] = reason
        return down

    def _confirm_due(self, target_id: int, now: float) -> bool:
        """Whether an active target's replica is due to be confirmed with its peer: each one
        every PEER_REFRESH, the first time at a point spread over that window (after a restart
        with 1,000 expansions, not 1,000 calls in the first pass and every minute after)."""
        last = self._confirmed_at.get(target_id)
        if last is None:
            last = now - PEER_REFRESH * ((target_id * 0.6180339887) % 1.0)
            self._confirmed_at[target_id] = last
        return now - last >= PEER_REFRESH

    def _sync_federation(
        self, result: PassResult, down: dict[str, str], rerouted: dict[int, routes.Blocked]
    ) -> dict[int, answers.ReplicaView]:
        """Returns the peer's view of each live target's replica (by target id). Peers whose
        link is down are not called: their targets say why and wait (or, reached through
        another member, say that: `_sync_routes`)."""
        replicas: dict[int, answers.ReplicaView] = {}
        now = time.monotonic()
        works = sync.pending_work(self.store, self.cfg.agent.name)
        for gone in set(self._confirmed_at) - {w.target_id for w in works}:
            del self._confirmed_at[gone]
        for work in works:
            if work.peer.name in down:
                why = f"link to {work.peer.name} is down: {down[work.peer.name]}"
                if work.deleting:
                    sync.set_status(self.store, work.target_id, "deleting", f"waiting: {why}")
                elif work.target_id not in rerouted:
                    sync.set_status(self.store, work.target_id, "error", why)
                result.settled = False
                continue
            if not work.deleting:
                try:
                    work = dataclasses.replace(
                        work, addressing=addressing.for_target(self.store, self.cloud, work)
                    )
                except IntercloudError as exc:
                    sync.set_status(self.store, work.target_id, "error", exc.message)
                    result.settled = False
                    continue
            if (
                work.status == "active"
                and work.vni is not None
                and not work.deleting
                and not self._confirm_due(work.target_id, now)
                and work.members_sent == work.members
                and (work.addressing is None or work.addressing == work.addressing_sent)
            ):
                # Agreed and built on both sides: the peer is asked again only when due, so a
                # pass costs no call per expansion (1,000 expansions, 1,000 calls).
                replicas[work.target_id] = answers.ReplicaView("active", work.vni)
                continue
            if work.deleting:
                if not sync.remove_target(self.store, self.client, work, result.peer_errors):
                    result.settled = False
                    continue
                try:
                    addressing.give_back(self.cloud, work)
                except IntercloudError as exc:
                    result.errors.append(f"expansion {work.expansion_uid}: {exc.message}")
                continue
            replica = sync.agree(self.store, self.client, work, self._vnis, result.peer_errors)
            if replica is None:
                result.settled = False
            else:
                replicas[work.target_id] = replica
                self._confirmed_at[work.target_id] = now
        return replicas

    def _sync_routes(
        self, result: PassResult, down: dict[str, str]
    ) -> tuple[dict[int, routes.relay.Routes], dict[int, routes.Blocked]]:
        """The origin: choose who relays what (domain/relay.py), tell the members, and say
        which targets we reach through another member while our link to them is down."""
        me = self.cfg.agent.name
        plans, pushes = routes.plan(self.store, me, down)
        for work in pushes:
            if not routes.push(self.store, self.client, work, result.peer_errors):
                result.settled = False
        rerouted = routes.blocked(self.store, me, plans, down)
        self._rerouted = rerouted
        for target_id, b in rerouted.items():
            if b.peer in down:
                why = f"reached through {b.via}: link to {b.peer} is down"
                sync.set_status(self.store, target_id, "active", why)
        return plans, rerouted

    def _flush_on_link_change(self, broken: set[str]) -> None:
        """A member whose link to a network's origin went down or came back: the origin now
        reaches us another way (or directly again), so what our ports learned is stale."""
        changed = broken ^ self._broken_links
        self._broken_links = set(broken)
        if not changed:
            return
        with self.store.session() as s:
            for rep in s.scalars(select(m.Replica)):
                if rep.peer.name in changed:
                    self._flush_requests.add(rep.id)

    def _sync_mesh(self, result: PassResult, down: dict[str, str], refresh: bool) -> None:
        """Direct tunnels between members of a network (not needed at its origin); their
        agreed VNIs are re-confirmed as often as the targets' (`refresh`)."""
        for work in mesh.plan_adjacencies(self.store, self.cfg.agent.name):
            if work.peer in down or (work.vni is not None and not refresh):
                continue
            if not mesh.agree(self.store, self.client, work, self._vnis, result.peer_errors):
                result.settled = False

    def _report_direct(
        self, result: PassResult, down: dict[str, str], realized: dict[int, list[str]]
    ) -> None:
        for due in mesh.reports_due(self.store, realized):
            if due.origin in down or not mesh.report(
                self.store, self.client, due, result.peer_errors
            ):
                result.settled = False

    def _sync_replicas(self, result: PassResult, down: dict[str, str]) -> ReplicaSync:
        """Objects in the cloud itself (OpenStack): the replicas we host (project, network,
        subnet, placeholders), their ports told to the origins, and the placeholders in our
        own expanded networks for the ports our peers told us."""
        try:
            made = self.cloud.sync_replicas(addressing.replica_specs(self.store))
        except IntercloudError as exc:
            result.errors.append(f"replicas: {exc.message}")
            result.settled = False
            return ReplicaSync()
        result.changes += made.changes
        if made.errors:
            result.settled = False
        try:
            if not addressing.report_ports(self.store, self.client, made, down, result.peer_errors):
                result.settled = False
            result.changes += addressing.origin_placeholders(
                self.store, self.cloud, self._placeholders
            )
        except IntercloudError as exc:  # the data plane does not depend on these
            result.errors.append(f"placeholders: {exc.message}")
            result.settled = False
        return made

    def _desired_inputs(
        self,
        tunnels_ok: dict[str, tunnels.TunnelOutcome],
        down: dict[str, str],
        made: ReplicaSync,
        plans: dict[int, routes.relay.Routes],
        rerouted: dict[int, routes.Blocked],
    ) -> tuple[list[NetworkWant], dict[str, LinkView], list[str]]:
        networks: list[NetworkWant] = []
        with self.store.session() as s:
            links = {}
            for lk in s.scalars(select(m.Link)):
                outcome = tunnels_ok.get(lk.peer.name, tunnels.TunnelOutcome(False, "unknown"))
                links[lk.peer.name] = LinkView(
                    lk.peer.name,
                    lk.local_endpoint,
                    lk.peer_tunnel_endpoint or lk.remote_endpoint,
                    lk.enabled,
                    ready=outcome.ready,
                    not_ready_reason=outcome.reason,
                    mss=budget.link_budget(lk).mss if self.dataplane.clamps_mss else None,
                )
            for exp in s.scalars(select(m.Expansion).where(m.Expansion.deleting.is_(False))):
                net = self.cloud.network(exp.project, exp.network)
                # a target another member relays us to: our own tunnel to it stays down
                wants = tuple(
                    TunnelWant(
                        f"t:{t.id}",
                        t.peer.name,
                        t.vni,
                        views.effective_rate(exp, t),
                        blocked=f"reached through {rerouted[t.id].via}" if t.id in rerouted else "",
                    )
                    for t in exp.targets
                )
                plan = plans.get(exp.id)
                forward = (
                    plan.forward.get(self.cfg.agent.name, frozenset()) if plan else frozenset()
                )
                networks.append(
                    NetworkWant(f"e{exp.id}", net.interface if net else "", wants, forward)
                )
            for rep in s.scalars(REPLICAS_WITH_ADJACENCIES):
                # OpenStack: the network made for it in the cloud is its local side
                local = made.interfaces.get(rep.uid)
                why_not = made.errors.get(rep.uid, "")
                if rep.addressing is not None and local is None and not why_not:
                    why_not = "waiting for its network in this cloud"
                wants = (TunnelWant(f"r:{rep.id}", rep.peer.name, rep.vni),)
                # A direct tunnel is only worth it while its peer answers: otherwise the path
                # may be cut, and the origin's relay is the safe way round (domain/relay.py).
                wants += tuple(
                    TunnelWant(
                        f"a:{a.id}",
                        a.peer.name,
                        a.vni,
                        blocked=f"link to {a.peer.name} is down: {down[a.peer.name]}"
                        if a.peer.name in down
                        else "",
                    )
                    for a in rep.adjacencies
                )
                if why_not:
                    wants = tuple(dataclasses.replace(w, blocked=why_not) for w in wants)
                # a member relays only the pairs its origin asked it to (domain/relay.py)
                forward = frozenset((a, b) for a, b in rep.relays or [])
                networks.append(NetworkWant(f"r{rep.id}", local, wants, forward))
        foreign = sorted(
            {n.interface for n in self.cloud.all_networks()} | set(made.interfaces.values())
        )
        return networks, links, foreign

    def _converge_dataplane(
        self,
        result: PassResult,
        replicas: dict[int, answers.ReplicaView],
        tunnels_ok: dict[str, tunnels.TunnelOutcome],
        down: dict[str, str],
        made: ReplicaSync,
        routed: tuple[dict[int, routes.relay.Routes], dict[int, routes.Blocked]],
    ) -> dict[int, list[str]]:
        """Returns, per replica, the members its direct tunnels reach (built and usable)."""
        networks, links, foreign = self._desired_inputs(tunnels_ok, down, made, *routed)
        prefix = self.cfg.dataplane.prefix
        # every network's local side: its kind decides how it joins the bridge
        foreign = sorted(set(foreign) | {n.local_interface for n in networks if n.local_interface})
        observed = self.dataplane.observe(foreign)
        desired = build(prefix, self.cfg.dataplane.vxlan_port, networks, links, observed.kinds)
        with self.dataplane.applying():
            for step, exc in self.dataplane.apply(planner.plan(desired.state, observed)):
                if exc is None:
                    log.info("dataplane: %s", step.describe())
                    result.changes += 1
                else:
                    log.error("dataplane: %s failed: %s", step.describe(), exc.message)
                    result.errors.append(exc.message)
        remaining = (
            planner.plan(desired.state, self.dataplane.observe(foreign))
            if result.changes or result.errors
            else []
        )
        broken = {_step_name(st) for st in remaining}
        if not result.errors:
            self._relays_applied = {
                int(net.key[1:]): [list(p) for p in sorted(net.forward)]
                for net in networks
                if net.key.startswith("r")
                and naming.bridge(prefix, net.key) in desired.state.bridges
            }
            self._flush_on_new_paths(result, *routed, desired.state, down)
            self._flush_as_asked(desired.state)
        return self._write_status(desired, broken, replicas, result)

    def _flush_as_asked(self, state) -> None:
        """The path between some members changed (we were asked, or saw it ourselves): forget
        the MACs our ports learned (they would point the old way until they age out)."""
        while self._flush_requests:
            self._flush_network(state, f"r{self._flush_requests.pop()}")

    def _flush_network(self, state, key: str) -> None:
        """Forget the MACs learned by the tunnel ports of one network's bridge."""
        bridge = naming.bridge(self.cfg.dataplane.prefix, key)
        for vx in state.vxlans.values():
            if vx.master == bridge:
                self.dataplane.flush_learned(vx.name)
                log.info("dataplane: flush_learned %s", vx.name)

    def _flush_on_new_paths(
        self,
        result: PassResult,
        plans: dict[int, routes.relay.Routes],
        rerouted: dict[int, routes.Blocked],
        state,
        down: dict,
    ) -> None:
        """The origin, once its data plane follows new paths (or a tunnel of ours went down or
        came back because another member relays): forget what our own ports of that network
        learned, and ask the members on a changed path (its ends and relays) to do the same.
        A member we cannot reach does it itself when its link to us comes back."""
        for gone in set(self._paths_applied) - set(plans):
            del self._paths_applied[gone]
            self._flush_pending.pop(gone, None)
        cut: dict[int, frozenset] = {}
        for b in rerouted.values():
            cut[b.expansion_id] = cut.get(b.expansion_id, frozenset()) | {(b.peer, b.via)}
        for exp_id, plan in plans.items():
            now = (plan.paths, cut.get(exp_id, frozenset()))
            before = self._paths_applied.get(exp_id)
            self._paths_applied[exp_id] = now
            if before is None or before == now:
                continue
            old = {tuple(p["between"]): p for p in before[0]}
            names = {name for pair in before[1] ^ now[1] for name in pair}
            for p in plan.paths:
                was = old.get(tuple(p["between"]))
                if was is not None and was != p:
                    names |= {*p["between"], *p["via"], *was["via"]}
            names.discard(self.cfg.agent.name)
            self._flush_pending[exp_id] = self._flush_pending.get(exp_id, set()) | names
            self._flush_network(state, f"e{exp_id}")
        for exp_id, names in list(self._flush_pending.items()):
            reachable = names - set(down)
            if not reachable or mesh.flush_members(
                self.store, self.client, exp_id, reachable, result.peer_errors
            ):
                del self._flush_pending[exp_id]
            else:
                result.settled = False

    def _write_status(
        self,
        desired,
        broken: set[str],
        replicas: dict[int, answers.ReplicaView],
        result: PassResult,
    ) -> dict[int, list[str]]:
        def local_state(owner: str) -> tuple[bool, str]:
            if owner in desired.blocked:
                return False, desired.blocked[owner]
            needs = desired.needs.get(owner, set())
            if needs & broken:
                return False, "the data plane could not be built: " + ", ".join(
                    sorted(needs & broken)
                )
            return True, ""

        with self.store.session() as s:
            for t in s.scalars(
                select(m.Target).join(m.Expansion).where(m.Expansion.deleting.is_(False))
            ):
                if t.id not in replicas:
                    continue  # the federation step recorded why
                ok, reason = local_state(f"t:{t.id}")
                peer_side = replicas[t.id]
                if not ok:
                    status = "error" if "could not" in reason else "pending"
                elif peer_side.status == "active":
                    status, reason = "active", ""
                elif peer_side.status == "error":  # its reason was cleaned (answers.replica)
                    status, reason = "error", f"peer {t.peer.name}: {peer_side.reason}"
                else:
                    status, reason = "pending", f"waiting for peer {t.peer.name} to build its side"
                if status != "active":
                    result.settled = False
                reason = text.clean(reason)
                if (t.status, t.reason) != (status, reason):
                    log.info(
                        "expansion %s peer %s: %s%s",
                        t.expansion.uid,
                        t.peer.name,
                        status,
                        f" ({reason})" if reason else "",
                    )
                    t.status, t.reason = status, reason
            realized: dict[int, list[str]] = {}
            for rep in s.scalars(REPLICAS_WITH_ADJACENCIES):
                realized[rep.id] = [
                    a.peer.name
                    for a in rep.adjacencies
                    if a.vni is not None and local_state(f"a:{a.id}")[0]
                ]
                ok, reason = local_state(f"r:{rep.id}")
                status = "active" if ok else ("pending" if rep.vni is None else "error")
                reason = text.clean(reason)
                if (rep.status, rep.reason) != (status, reason):
                    log.info(
                        "replica %s of peer %s: %s%s",
                        rep.uid,
                        rep.peer.name,
                        status,
                        f" ({reason})" if reason else "",
                    )
                    rep.status, rep.reason = status, reason
        return realized


def _family(address: str) -> int | None:
    """4 or 6 (None: not an address, stored by an older agent; the peer is not held to it)."""
    try:
        return ipaddress.ip_address(address).version
    except ValueError:
        return None


def _step_name(step: planner.Step) -> str:
    obj = step.obj
    if isinstance(obj, str):
        return obj
    return str(getattr(obj, "name", None) or getattr(obj, "interface", ""))
