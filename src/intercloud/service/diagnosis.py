"""`intercloud diagnose`: gather what each layer of a link shows (the store, the host, the IPsec
driver, the peer's health call, the tunnel prober) and let domain/diagnosis.py judge it.

The host, the IPsec driver and the prober come in as the small protocols below; the agent
wires the real ones (agent.py), tests hand in fakes."""

from __future__ import annotations

import dataclasses
import ipaddress
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from intercloud.domain import diagnosis as dg
from intercloud.domain import naming
from intercloud.domain.diagnosis import Diagnosis
from intercloud.domain.probe import TunnelHealth
from intercloud.errors import IntercloudError, PeerError
from intercloud.federation import answers, failures
from intercloud.federation.peers import PeerRef
from intercloud.federation.signing import MAX_SKEW_SECONDS
from intercloud.federation.transport import SignatureRefused
from intercloud.service import admin, budget
from intercloud.store import Store
from intercloud.store import models as m

CONNECTION_PREFIX = "link-"  # the IPsec connection of a link (reconciler/connections.py)
PROBE_TIMEOUT = 1.0  # seconds one probe frame may take to come back
MAX_PROBED_PORTS = 4  # per link: a diagnosis stays a few seconds long with many expansions
BUILT = ("active", "error")  # the statuses of targets and replicas whose port exists


class Host(Protocol):
    """The agent's host as the walk reads it (drivers/underlay.py)."""

    @property
    def reads_ports(self) -> bool:
        """Whether flood() can read this data plane's tunnel ports."""

    def route(self, address: str) -> dg.Route: ...

    def flood(self, port: str) -> tuple[str, ...] | None:
        """The addresses the tunnel port floods to (None: no such port)."""


class Child(Protocol):
    packets_in: int
    packets_out: int


class Connection(Protocol):
    ike_state: str
    last_error: str

    @property
    def up(self) -> bool: ...

    @property
    def children(self) -> Sequence[Child]: ...


class Encryption(Protocol):
    """The IPsec driver as the walk reads it."""

    @property
    def refusal(self) -> str | None: ...

    def connections(self) -> Mapping[str, Connection]: ...


class TunnelProber(Protocol):
    """The tunnel prober (drivers/probe): `check` sends one probe frame of `size` bytes
    through the tunnel port and returns its RTT, or None without an answer."""

    @property
    def available(self) -> bool: ...

    @property
    def unavailable_reason(self) -> str | None: ...

    def health(self, port: str) -> TunnelHealth | None: ...

    def check(self, port: str, size: int, timeout: float) -> float | None: ...


class HealthCall(Protocol):
    def health(self, family: int | None = None) -> answers.Health: ...


class Peers(Protocol):
    def peer(self, ref: PeerRef) -> HealthCall: ...


@dataclass(frozen=True)
class _LinkRow:
    """What the walk needs of one link, read in one session."""

    peer: str
    ref: PeerRef
    remote: str
    tunnel_remote: str
    encrypted: bool
    enabled: bool
    family: int | None
    vm_mtu: int
    ports: tuple[tuple[str, int], ...]  # (port name, vni)


@dataclass
class Diagnoser:
    store: Store
    prefix: str
    peers: Peers
    ipsec: Encryption
    host: Host
    prober: TunnelProber | None = None
    clock: Callable[[], float] = time.time

    def link(self, peer: str) -> Diagnosis:
        """The walk of the link to `peer` (NotFound: no such peer or link)."""
        with self.store.session() as s:
            row = self._row(s, admin.get_link(s, peer))
        return dg.walk(self._observe(row))

    def links(self) -> list[Diagnosis]:
        with self.store.session() as s:
            rows = [
                self._row(s, lk)
                for lk in s.scalars(select(m.Link).join(m.Peer).order_by(m.Peer.name))
            ]
        return [dg.walk(self._observe(row)) for row in rows]

    # -- reading the store ------------------------------------------------------------------

    def _row(self, s: Session, lk: m.Link) -> _LinkRow:
        p = lk.peer
        return _LinkRow(
            peer=p.name,
            ref=PeerRef(p.name, p.federation_url, p.key),
            remote=lk.remote_endpoint,
            tunnel_remote=lk.peer_tunnel_endpoint or lk.remote_endpoint,
            encrypted=lk.encrypted,
            enabled=lk.enabled,
            family=_family(lk.local_endpoint),
            vm_mtu=budget.link_budget(lk).vm_mtu,
            ports=tuple((naming.vxlan(self.prefix, vni), vni) for vni in _vnis(s, p)),
        )

    # -- looking at the world ---------------------------------------------------------------

    def _observe(self, row: _LinkRow) -> dg.Link:
        route = self._route(row.remote)
        sa_before = self._sa(row) if row.encrypted else None
        api = self._api(row)
        sa = self._sa(row, before=sa_before) if row.encrypted else None
        return dg.Link(
            peer=row.peer,
            remote=row.remote,
            encrypted=row.encrypted,
            enabled=row.enabled,
            route=route,
            sa=sa,
            ipsec_refusal=self.ipsec.refusal if row.encrypted else None,
            api=api,
            window=MAX_SKEW_SECONDS,
            ports=self._ports(row) if self.host.reads_ports else None,
            prober=self._probing(),
            prober_off=self._prober_off(),
            vm_mtu=row.vm_mtu,
        )

    def _route(self, address: str) -> dg.Route:
        try:
            return self.host.route(address)
        except IntercloudError as exc:
            return dg.Route(False, exc.message)

    def _sa(self, row: _LinkRow, before: dg.Sa | None = None) -> dg.Sa | None:
        if self.ipsec.refusal:
            return None
        try:
            conn = self.ipsec.connections().get(CONNECTION_PREFIX + row.peer)
        except IntercloudError as exc:
            return dg.Sa("UNKNOWN", False, f"cannot read IPsec: {exc.message}")
        if conn is None:
            return None
        now_in = sum(c.packets_in for c in conn.children)
        now_out = sum(c.packets_out for c in conn.children)
        first_in, first_out = now_in, now_out  # the first look is its own "before"
        if before is not None and before.packets_in and before.packets_out:
            first_in, first_out = before.packets_in[1], before.packets_out[1]
        return dg.Sa(
            conn.ike_state, conn.up, conn.last_error, (first_in, now_in), (first_out, now_out)
        )

    def _api(self, row: _LinkRow) -> dg.Api:
        started = self.clock()
        try:
            answer = self.peers.peer(row.ref).health(row.family)
        except PeerError as exc:
            ended = self.clock()
            peer_time = exc.peer_time if isinstance(exc, SignatureRefused) else None
            detail = exc.message + (f" ({exc.detail})" if exc.detail else "")
            return dg.Api(
                row.ref.url,
                failures.kind(exc),
                detail,
                peer_time=peer_time,
                # an HTTP Date has whole seconds: compare it with ours at the answer
                our_time=ended,
            )
        ended = self.clock()
        return dg.Api(
            row.ref.url,
            None,
            rtt=ended - started,
            peer_time=answer.time,
            our_time=(started + ended) / 2,
        )

    def _ports(self, row: _LinkRow) -> list[dg.Port]:
        out = []
        for i, (name, vni) in enumerate(row.ports):
            flood = self.host.flood(name)
            port = dg.Port(name, vni, row.tunnel_remote, flood=flood)
            if self._probing() and flood is not None and i < MAX_PROBED_PORTS:
                port = self._probe(port, row.vm_mtu + dg.ETHERNET_HEADER)
            out.append(port)
        return out

    def _probing(self) -> bool:
        return self.prober is not None and self.prober.available

    def _prober_off(self) -> str:
        if self.prober is None or not self.prober.unavailable_reason:
            return dg.NO_PROBER
        return f"no tunnel probe: {self.prober.unavailable_reason}"

    def _probe(self, port: dg.Port, big: int) -> dg.Port:
        assert self.prober is not None
        try:
            small = self.prober.check(port.name, dg.SMALL_PROBE, PROBE_TIMEOUT)
            large = None
            if small is not None:
                large = self.prober.check(port.name, big, PROBE_TIMEOUT)
        except IntercloudError as exc:  # probes off, or the port went away meanwhile
            return dataclasses.replace(port, probe_error=exc.message)
        seen = self.prober.health(port.name)
        return dg.Port(
            port.name,
            port.vni,
            port.remote,
            port.flood,
            probed=True,
            small=small,
            big=large,
            big_size=big,
            loss=seen.loss if seen is not None else None,
            silent_for=self.clock() - seen.last_answer_at
            if seen is not None and seen.last_answer_at is not None
            else None,
        )


def _vnis(s: Session, peer: m.Peer) -> list[int]:
    """The VNIs of the tunnel ports this host should have toward `peer`: our expansions'
    (not those another member relays for us), our replicas of its expansions, and the direct
    tunnels of our replicas with it. `error` ones too: a silent tunnel or a peer gone quiet
    turns them `error` while their port stays."""
    vnis = [
        t.vni
        for t in s.scalars(select(m.Target).where(m.Target.peer_id == peer.id))
        if t.vni is not None and t.status in BUILT and "reached through" not in t.reason
    ]
    vnis += [
        r.vni
        for r in s.scalars(select(m.Replica).where(m.Replica.peer_id == peer.id))
        if r.vni is not None and r.status in BUILT
    ]
    vnis += [
        a.vni
        for a in s.scalars(select(m.Adjacency).where(m.Adjacency.peer_id == peer.id))
        if a.vni is not None
    ]
    return sorted(set(vnis))


def _family(address: str) -> int | None:
    try:
        return ipaddress.ip_address(address).version
    except ValueError:
        return None
