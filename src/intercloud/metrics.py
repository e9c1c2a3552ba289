"""The agent's Prometheus metrics: one registry per agent (several agents share a process in
the tests, so never the library's global one) and the instruments the code paths record into.

Gauges of state (links, SAs, expansions) are not recorded here: a collector registered with
`watch` reads them from the store at scrape time (service/gauges.py). Labels are bounded: peer
names, lanes, call, route and state names; never an expansion's uid."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector

from intercloud import heap

# The text format every Prometheus reads (2.x included).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# No `*_created` series beside every counter and histogram: twice the series for a start time
# Prometheus does not need (the library's switch is process-wide; the agent has no other use).
disable_created_metrics()

# a pass takes milliseconds on a converged host, seconds when peers are slow or many change
PASS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# a call or an API request: a LAN round trip to a peer's timeout (5 s)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Watch(Collector):
    """A collector made of a function returning metric families (read at scrape time)."""

    def __init__(self, read: Callable[[], Iterable[Any]]) -> None:
        self.read = read

    def collect(self) -> Iterable[Any]:
        return self.read()

    def describe(self) -> Iterable[Any]:
        return []  # registering it reads nothing (no store at start-up)


class Metrics:
    """The registry and the instruments of one agent."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.pass_duration = Histogram(
            "intercloud_reconcile_pass_duration_seconds",
            "Duration of a reconciler pass.",
            buckets=PASS_BUCKETS,
            registry=r,
        )
        self.changes = Counter(
            "intercloud_reconcile_changes",
            "Changes the reconciler made (driver calls that changed something).",
            registry=r,
        )
        self.errors = Counter(
            "intercloud_reconcile_errors",
            "Errors of ours a reconciler pass reported (a failed pass counts one).",
            registry=r,
        )
        self.call_duration = Histogram(
            "intercloud_federation_call_duration_seconds",
            "Duration of a federation call to a peer agent, failed ones included.",
            ["peer", "call"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self.call_errors = Counter(
            "intercloud_federation_call_errors",
            "Federation calls to a peer agent that failed (unreachable, refused, bad answer).",
            ["peer", "call"],
            registry=r,
        )
        self.health_checks = Counter(
            "intercloud_peer_health_checks",
            "Health checks of a link's peer by result (ok, failed): loss is the failed share.",
            ["peer", "result"],
            registry=r,
        )
        self.peer_rtt = Gauge(
            "intercloud_peer_rtt_seconds",
            "Round trip of the last health check answered by a link's peer.",
            ["peer"],
            registry=r,
        )
        self.api_duration = Histogram(
            "intercloud_api_request_duration_seconds",
            "Duration of an API request, by route template, method and status.",
            ["route", "method", "status"],
            buckets=CALL_BUCKETS,
            registry=r,
        )

        self.proxy_calls = Counter(
            "intercloud_proxy_calls",
            "Tenant API calls proxied to a peer's cloud, by peer, service type and status "
            "class (refusals before the peer and service are known count under '-').",
            ["peer", "service_type", "status_class"],
            registry=r,
        )

        self.watch(_collector_time)

    def proxied(self, peer: str, service_type: str, status: int) -> None:
        """One call of the tenant API proxy (api/proxy.py)."""
        self.proxy_calls.labels(peer, service_type, f"{status // 100}xx").inc()

    def watch(self, read: Callable[[], Iterable[Any]]) -> None:
        """Add families read at every scrape (`read` returns prometheus_client metric
        families, e.g. GaugeMetricFamily)."""
        self.registry.register(Watch(read))

    def passed(self, seconds: float, changes: int, errors: int) -> None:
        """One reconciler pass."""
        self.pass_duration.observe(seconds)
        if changes:
            self.changes.inc(changes)
        if errors:
            self.errors.inc(errors)

    def called(self, peer: str, call: str, seconds: float, failed: bool) -> None:
        """One federation call."""
        self.call_duration.labels(peer, call).observe(seconds)
        if failed:
            self.call_errors.labels(peer, call).inc()

    def checked(self, peer: str, rtt: float | None) -> None:
        """One health check of a link's peer: its round trip, None when it did not answer."""
        self.health_checks.labels(peer, "failed" if rtt is None else "ok").inc()
        if rtt is not None:
            self.peer_rtt.labels(peer).set(rtt)
            return
        with contextlib.suppress(KeyError):  # no round trip now: the last one would mislead
            self.peer_rtt.remove(peer)

    def requested(self, route: str, method: str, status: int, seconds: float) -> None:
        """One API request (a method of a client's own making counts as OTHER)."""
        method = method if method in METHODS else "OTHER"
        self.api_duration.labels(route, method, str(status)).observe(seconds)

    def exposition(self) -> bytes:
        """Every family in Prometheus' text format (CONTENT_TYPE)."""
        return generate_latest(self.registry)


__all__ = ["CONTENT_TYPE", "Metrics"]


def _collector_time() -> Iterable[Any]:
    """The cyclic collector's walks and their seconds by generation (heap.COLLECTOR; nothing
    where it is not timed). Process-wide, like the collector."""
    if not heap.COLLECTOR.watching:
        return []
    seconds = CounterMetricFamily(
        "intercloud_gc_seconds",
        "Seconds Python's cyclic collector ran (every thread waits meanwhile).",
        labels=["generation"],
    )
    walks = CounterMetricFamily(
        "intercloud_gc_collections", "Walks of Python's cyclic collector.", labels=["generation"]
    )
    longest = GaugeMetricFamily(
        "intercloud_gc_longest_walk_seconds",
        "The longest single walk of Python's cyclic collector since the agent started (the"
        " longest every thread, the API's included, waited for it).",
        labels=["generation"],
    )
    for generation in range(3):
        label = [str(generation)]
        seconds.add_metric(label, heap.COLLECTOR.seconds[generation])
        walks.add_metric(label, heap.COLLECTOR.collections[generation])
        longest.add_metric(label, heap.COLLECTOR.longest[generation])
    return [seconds, walks, longest]
