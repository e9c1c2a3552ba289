"""The agent daemon: API + state + reconciler + drivers, wired from the config."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import start_http_server

from intercloud import config as config_mod
from intercloud import heap, tls
from intercloud.api import server as api_server
from intercloud.api.context import AppContext
from intercloud.drivers import cloud as cloud_drivers
from intercloud.drivers import dataplane as dataplane_drivers
from intercloud.drivers import ipsec as ipsec_drivers
from intercloud.drivers import probe as probe_drivers
from intercloud.drivers.underlay import LinuxHost
from intercloud.errors import IntercloudError
from intercloud.federation.peers import Federation
from intercloud.metrics import Metrics
from intercloud.reconciler import Reconciler, ha
from intercloud.service import gauges
from intercloud.service.diagnosis import Diagnoser
from intercloud.store import Store, models
from intercloud.store.fence import Fence
from intercloud.store.leases import session_name

log = logging.getLogger("intercloud.agent")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def build(cfg: config_mod.Config) -> AppContext:
    # gateway HA: a takeover ends this gateway's uncommitted writes by their sessions' name
    named = session_name(cfg.agent.name, cfg.ha.gateway) if cfg.ha.enabled else None
    store = Store(cfg.agent.database, named)
    store.migrate()
    cloud = cloud_drivers.load(cfg)
    dataplane = dataplane_drivers.load(cfg)
    metrics = Metrics()  # this agent's registry (not the library's global one)
    metrics.watch(gauges.collector(store))
    federation = Federation(
        cfg.agent.name,
        timeout=cfg.agent.federation_timeout,
        pinned=lambda peer: pinned_ca(store, peer),
        plain_http=cfg.agent.plain_http,
        metrics=metrics,
    )
    ipsec = ipsec_drivers.load(cfg)
    probes = probe_drivers.load(cfg)  # started by run(): tests that build() send no frame
    metrics.watch(gauges.probes(probes))
    reconciler = Reconciler(
        cfg, store, cloud, dataplane, federation, ipsec, metrics=metrics, probes=probes
    )
    probes.on_change = reconciler.trigger  # a tunnel went silent or answers again
    role = ha.from_config(  # None: HA off
        cfg, store, ipsec, on_active=reconciler.took_over, passes=lambda: reconciler.stats.passes
    )
    if role is not None:
        reconciler.may_write = role.active  # a standby gateway makes no writing pass
        store.fence = Fence(cfg.agent.name, role.gateway, held_token(role))
    ipsec.on_sa_up(reconciler.trigger)  # a link's ports come up as soon as its SA does
    return AppContext(
        cfg=cfg,
        store=store,
        cloud=cloud,
        dataplane=dataplane,
        reconciler=reconciler,
        ipsec=ipsec,
        metrics=metrics,
        federation=federation,
        probes=probes,
        diagnoser=Diagnoser(
            store,
            cfg.dataplane.prefix,
            federation,
            ipsec,
            LinuxHost(reads_ports=cfg.dataplane.driver == "linux"),
            prober=probes,
        ),
        ha=role,
    )


def held_token(role: ha.GatewayRole) -> Callable[[], int | None]:
    """The lease token `role` holds now; None while standby (its writes are refused)."""
    return lambda: role.leadership.token if role.active() else None


def pinned_ca(store: Store, peer: str) -> str | None:
    """The PEM an admin pinned for `peer` (None: the system's CAs)."""
    with store.session() as s:
        row = s.query(models.Peer.tls_ca).filter(models.Peer.name == peer).one_or_none()
    return row[0] if row else None


def _server_tls(cfg: config_mod.Config) -> tls.ServerTLS | None:
    if cfg.agent.plain_http:
        log.warning(
            "agent %s: serving plain HTTP (agent.plain_http = true): tokens and federation "
            "requests cross the network in clear",
            cfg.agent.name,
        )
        return None
    server_tls = tls.ServerTLS(cfg.agent.tls_cert, cfg.agent.tls_key)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, lambda *_: _reload(server_tls))
    return server_tls


def _reload(server_tls: tls.ServerTLS) -> None:
    try:
        server_tls.reload()
    except IntercloudError as exc:
        log.error("SIGHUP: %s; still serving the previous certificate", exc.message)
        return
    log.info("SIGHUP: TLS certificate reloaded from %s", server_tls.cert)


def _metrics_listener(cfg: config_mod.Config, ctx: AppContext) -> Any:
    """The plain, unauthenticated /metrics of `agent.metrics_listen` (None: not configured):
    for a scraper on the host itself; the API's /metrics asks for the admin token."""
    if not cfg.agent.metrics_listen:
        return None
    host, port = config_mod.metrics_address(cfg.agent.metrics_listen)
    server, _ = start_http_server(port, host, registry=ctx.metrics.registry)
    log.info(
        "agent %s: metrics on http://%s/metrics (no token)",
        cfg.agent.name,
        cfg.agent.metrics_listen,
    )
    return server


def run(config_path: str | Path) -> None:
    cfg = config_mod.load(config_path)
    logging.basicConfig(level=cfg.agent.log_level.upper(), format=LOG_FORMAT, force=True)
    heap.tune()  # before any thread: big buffers freed go back to the system (heap.py)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    server_tls = _server_tls(cfg)
    ctx = build(cfg)
    # The API is built before the reconciler starts. Tried the other way round (2026-12-06):
    # the first pass then shares the interpreter with FastAPI's import (5 s instead of ~1 at
    # 3,000 expansions) and a restart from nothing got no faster (bench/scale.py).
    server = api_server.make(ctx, server_tls, first=ctx.ha.stop if ctx.ha else lambda: None)
    heap.freeze_startup()  # start-up's objects out of the collector's walks (heap.py)
    heap.collect_less()
    heap.COLLECTOR.start()  # its time in /v1/status and the metrics
    # The event loop answers every request on one thread; while the reconciler thread runs
    # Python, the loop waits for the GIL after each socket call, up to the switch interval
    # (5 ms by default). 1 ms: API reads p99 33-68 ms under 50 clients, was 71-74 (bench).
    sys.setswitchinterval(0.001)
    log.info(
        "agent %s: listening on %s://%s:%d, database %s, dataplane %s",
        cfg.agent.name,
        "http" if server_tls is None else "https",
        cfg.agent.listen,
        cfg.agent.port,
        ctx.store.engine.url.render_as_string(),
        cfg.dataplane.driver,
    )
    metrics_server = _metrics_listener(cfg, ctx)
    ctx.probes.start()
    if ctx.ha is not None:
        ctx.ha.start()  # standby until it holds the lease
    ctx.reconciler.start()
    try:
        server.run()
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()
        if ctx.ha is not None:
            ctx.ha.stop()  # steps down and hands the lease over at once
        # Leave the data plane as it is: a restart must not drop a packet.
        ctx.reconciler.stop()
        ctx.probes.stop()
        ctx.dataplane.close()
        ctx.ipsec.close()
        ctx.store.dispose()
        log.info("agent %s: stopped (data plane left in place)", cfg.agent.name)


__all__ = ["build", "pinned_ca", "run"]
