"""The metrics read from the store at scrape time (metrics.py's `watch`): each link's state, its
IPsec SAs and traffic per lane as the reconciler last wrote them (`Link.ipsec_status`), and
expansions by peer and state. Aggregated per peer: an expansion's uid is never a label."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from sqlalchemy import func, select

from intercloud.domain.probe import PeerTotals, Verdict
from intercloud.store import Store
from intercloud.store import models as m

LINK_STATES = ("up", "down", "disabled", "unknown")
DIRECTIONS = (("in", "bytes_in", "packets_in"), ("out", "bytes_out", "packets_out"))


def collector(store: Store) -> Callable[[], Iterator[Any]]:
    """The function metrics.Metrics.watch calls at every scrape."""

    def read() -> Iterator[Any]:
        yield from links(store)
        yield from expansions(store)

    return read


def links(store: Store) -> Iterator[Any]:
    up = GaugeMetricFamily(
        "intercloud_link_up", "1 when the link to the peer is up, else 0.", labels=["peer"]
    )
    state = GaugeMetricFamily(
        "intercloud_link_state",
        "The link's state (1 for the current one).",
        labels=["peer", "state"],
    )
    ike = GaugeMetricFamily(
        "intercloud_ipsec_ike_sa_state",
        "The IKE SA's state per lane (1 for the current one; DOWN: no IKE SA).",
        labels=["peer", "lane", "state"],
    )
    children = GaugeMetricFamily(
        "intercloud_ipsec_child_sas",
        "CHILD_SAs per lane and state.",
        labels=["peer", "lane", "state"],
    )
    # ESP counters of the current CHILD_SAs: they restart at a rekey (rate() sees a reset)
    octets = CounterMetricFamily(
        "intercloud_ipsec_bytes",
        "ESP bytes of the link's CHILD_SAs per lane and direction.",
        labels=["peer", "lane", "direction"],
    )
    packets = CounterMetricFamily(
        "intercloud_ipsec_packets",
        "ESP packets of the link's CHILD_SAs per lane and direction.",
        labels=["peer", "lane", "direction"],
    )
    with store.session() as s:
        rows = s.execute(select(m.Peer.name, m.Link.state, m.Link.ipsec_status).join(m.Link.peer))
        for peer, current, ipsec in rows:
            up.add_metric([peer], 1.0 if current == "up" else 0.0)
            for name in sorted({*LINK_STATES, current}):
                state.add_metric([peer, name], 1.0 if name == current else 0.0)
            for lane, view in _lanes(ipsec):
                ike.add_metric([peer, lane, str(view.get("ike_state") or "DOWN")], 1.0)
                _sas(peer, lane, view.get("children") or [], children, octets, packets)
    yield from (up, state, ike, children, octets, packets)


def _lanes(ipsec: dict | None) -> Iterator[tuple[str, dict]]:
    """(lane, its view): lane "0" is the link's own charon, then the further lanes."""
    if not isinstance(ipsec, dict):
        return
    yield "0", ipsec
    for lane in ipsec.get("lanes") or []:
        yield str(lane.get("lane", "")), lane


def _sas(
    peer: str,
    lane: str,
    sas: list[dict],
    children: GaugeMetricFamily,
    octets: CounterMetricFamily,
    packets: CounterMetricFamily,
) -> None:
    by_state: dict[str, int] = {}
    for sa in sas:
        name = str(sa.get("state") or "UNKNOWN")
        by_state[name] = by_state.get(name, 0) + 1
    for name, n in sorted(by_state.items()):
        children.add_metric([peer, lane, name], float(n))
    for direction, nbytes, npackets in DIRECTIONS:
        octets.add_metric([peer, lane, direction], float(sum(sa.get(nbytes, 0) for sa in sas)))
        packets.add_metric([peer, lane, direction], float(sum(sa.get(npackets, 0) for sa in sas)))


def expansions(store: Store) -> Iterator[Any]:
    """Our expansions' peers, and the replicas we host for peers, counted by peer and state."""
    targets = GaugeMetricFamily(
        "intercloud_expansion_peers",
        "Peers of this cloud's expansions, by peer and state (deleting: being removed).",
        labels=["peer", "state"],
    )
    replicas = GaugeMetricFamily(
        "intercloud_replicas",
        "Networks this cloud hosts for peers' expansions, by origin peer and state.",
        labels=["peer", "state"],
    )
    with store.session() as s:
        rows = s.execute(
            select(m.Peer.name, m.Target.status, m.Expansion.deleting, func.count())
            .select_from(m.Target)
            .join(m.Target.peer)
            .join(m.Target.expansion)
            .group_by(m.Peer.name, m.Target.status, m.Expansion.deleting)
        )
        counts: dict[tuple[str, str], int] = {}
        for peer, status, deleting, n in rows:
            key = (peer, "deleting" if deleting else status)
            counts[key] = counts.get(key, 0) + n
        for (peer, state), n in sorted(counts.items()):
            targets.add_metric([peer, state], float(n))
        hosted = s.execute(
            select(m.Peer.name, m.Replica.status, func.count())
            .select_from(m.Replica)
            .join(m.Replica.peer)
            .group_by(m.Peer.name, m.Replica.status)
        )
        for peer, status, n in hosted:
            replicas.add_metric([peer, status], float(n))
    yield from (targets, replicas)


class ProbeTotals(Protocol):
    def totals(self) -> dict[str, PeerTotals]:
        """Per peer: every probe since the agent started, and its tunnels' verdicts now."""


def probes(source: ProbeTotals) -> Callable[[], Iterator[Any]]:
    """The tunnel probes' families (domain/probe.py), per peer: read from the prober at every
    scrape (what it counts in memory; no instrument is touched per probe)."""

    def read() -> Iterator[Any]:
        rtt = HistogramMetricFamily(
            "intercloud_tunnel_probe_rtt_seconds",
            "Round trip of the answered probes through the tunnel ports toward the peer.",
            labels=["peer"],
        )
        sent = CounterMetricFamily(
            "intercloud_tunnel_probes",
            "Probes sent into the tunnel ports toward the peer, by result (answered, lost).",
            labels=["peer", "result"],
        )
        tunnels = GaugeMetricFamily(
            "intercloud_tunnels_probed",
            "Tunnel ports toward the peer, by what their probes say (answering, silent: answered "
            "before but not lately, starting, unanswered: never answered).",
            labels=["peer", "verdict"],
        )
        silent = GaugeMetricFamily(
            "intercloud_tunnels_silent",
            "Tunnel ports toward the peer that answered before and no longer do (black-holed).",
            labels=["peer"],
        )
        for peer, t in sorted(source.totals().items()):
            rtt.add_metric([peer], t.buckets(), t.rtt_sum)
            sent.add_metric([peer, "answered"], float(t.answered))
            sent.add_metric([peer, "lost"], float(t.lost))
            for v in Verdict:
                tunnels.add_metric([peer, v.value], float(t.verdicts.get(v, 0)))
            silent.add_metric([peer], float(t.verdicts.get(Verdict.SILENT, 0)))
        yield from (rtt, sent, tunnels, silent)

    return read
