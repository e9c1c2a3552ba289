"""Encryption lanes: one link's encryption spread over several charon instances.

Why: with kernel-libipsec (userspace ESP, all there is on kernels without ESP) a charon
encrypts on one thread and decrypts on another, whatever the number of SAs
(src/libipsec/ipsec_processor.c queues every packet on one outbound and one inbound job).
A second charon is the only way to a second pair; measured in the README (Benchmarks).

How, on an agent with N lanes (lane 0 is the agent's usual charon):

* lane k's charon has its own IKE ports (4500 + 10k, NAT-T 4501 + 10k), socket mark
  0x1c1 + k and routing table 220 + k (charon_conf.py `conf_text(lane=k)`); every charon's policy
  rule skips all lanes' socket marks, so no ESP is routed into another charon's TUN device.
* per link every lane has its own IKE SA and CHILD_SA between the same endpoints, with the
  link's crypto and PSK; lane k connects to the peer's lane k port. Lane 0 traps (nothing to
  the peer leaves in clear); lane k > 0 has a route in its table only while its CHILD_SA is
  installed.
* steering (lane_steering.py): each outer VXLAN flow is placed on a lane when it starts and
  pinned there (conntrack mark), so it stays in order; new flows take the lanes in turn, the
  lighter ones first when the lanes' byte counters say they are uneven (domain/lane_balance.py,
  rebalanced every second by `LaneBalancer`); `ip rule fwmark 0x1d0+k lookup 220+k` (priority
  110 + k) sends a flow into lane k's TUN device. When lane k has no SA its table has no route,
  the lookup falls through to lane 0's rule (still encrypted), and the rebalancer re-places
  lane k's flows on the lanes that are up.
* a peer with fewer lanes never answers our lane k's IKE: that lane stays down, the status
  says so and its flows go through lane 0.

Only IPv4 underlays are steered (an IPv6 link stays on lane 0), and only with kernel-libipsec:
with kernel ESP the kernel already encrypts on the sending CPU, so further lanes are not used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

from intercloud.drivers.ipsec import lane_layout
from intercloud.drivers.ipsec.base import ConnectionSpec, ConnectionStatus, Ipsec
from intercloud.drivers.ipsec.lane_steering import (
    RULE_PRIO,
    STEER_MARK,
    TABLE,
    LaneBalancer,
    LaneSteering,
    ruleset,
    wanted_rules,
)
from intercloud.errors import DriverError, IntercloudError

__all__ = [
    "RULE_PRIO",
    "STEER_MARK",
    "TABLE",
    "LaneBalancer",
    "LaneSteering",
    "LanedIpsec",
    "lane_spec",
    "lanes_in_use",
    "ruleset",
    "wanted_rules",
]

log = logging.getLogger("intercloud.ipsec")

LIBIPSEC = "kernel-libipsec"


def lanes_in_use(configured: int, backend: str | None) -> int:
    """How many of the configured lanes carry traffic: further lanes only with kernel-libipsec
    (kernel ESP already encrypts on the sending CPU); 1 while the backend is not known."""
    return configured if backend == LIBIPSEC else 1


def lane_spec(spec: ConnectionSpec, lane: int) -> ConnectionSpec:
    """Lane `lane`'s connection for a link: the peer's lane port, no trap."""
    return replace(spec, ike_port=lane_layout.lane_port(lane), trap=False)


class LanedIpsec(Ipsec):
    """Lane 0 is the link's connection as without lanes (its status is the link's); lanes
    1.. carry the same connection on further charons. A lane that fails is logged and shown
    in the link's status, never fails the link: its flows go through lane 0."""

    def __init__(self, lanes: Sequence[Ipsec], steering: LaneSteering) -> None:
        if not lanes:
            raise DriverError("ipsec lanes: no charon")
        self.lanes = list(lanes)
        self.steering = steering
        self.balancer = LaneBalancer(steering)
        self._errors: dict[tuple[int, str], str] = {}  # (lane, conn) -> last driver error

    def backend(self) -> str:
        return self.lanes[0].backend()

    def _extra(self) -> list[tuple[int, Ipsec]]:
        """The further lanes in use (`lanes_in_use`)."""
        return list(enumerate(self.lanes))[1 : lanes_in_use(len(self.lanes), self.backend())]

    def _try(self, lane: int, name: str, what: str, fn) -> bool:
        try:
            result = bool(fn())
        except IntercloudError as exc:
            if self._errors.get((lane, name)) != exc.message:
                log.warning("lane %d: %s %s failed: %s", lane, what, name, exc.message)
            self._errors[(lane, name)] = exc.message
            return False
        self._errors.pop((lane, name), None)
        return result

    def ensure_connection(self, spec: ConnectionSpec, *, initiate: bool = True) -> bool:
        changed = self.lanes[0].ensure_connection(spec, initiate=initiate)
        for k, lane in self._extra():
            ensure = lane.ensure_connection
            s = lane_spec(spec, k)
            changed |= self._try(
                k, spec.name, "connection", lambda f=ensure, s=s: f(s, initiate=initiate)
            )
        return changed

    def remove_connection(self, name: str) -> bool:
        existed = self.lanes[0].remove_connection(name)
        for k, lane in list(enumerate(self.lanes))[1:]:  # also lanes no longer in use
            existed |= self._try(k, name, "removal", lambda lane=lane: lane.remove_connection(name))
            self._errors.pop((k, name), None)
        return existed

    def on_sa_up(self, callback: Callable[[], None]) -> None:
        for lane in self.lanes:  # a further lane's SA completes the link as well
            lane.on_sa_up(callback)

    def connections(self) -> dict[str, ConnectionStatus]:
        out = self.lanes[0].connections()
        further: list[tuple[int, dict[str, ConnectionStatus], str]] = []
        for k, lane in self._extra():
            try:
                further.append((k, lane.connections(), ""))
            except IntercloudError as exc:
                further.append((k, {}, exc.message))
        for _, theirs, _ in further:  # a connection left only in a further lane is listed
            for name in theirs.keys() - out.keys():  # (DOWN), so the reconciler removes it
                out[name] = ConnectionStatus(name, "DOWN")
        for k, theirs, unreachable in further:
            for name, st in out.items():
                lane_st = theirs.get(name) or ConnectionStatus(name, "DOWN")
                if not lane_st.up and not lane_st.last_error:
                    lane_st.last_error = unreachable or self._errors.get((k, name), "")
                st.lanes.append(lane_st)
        return out

    def ensure_guard(self, destinations: set[str]) -> bool:
        return self.lanes[0].ensure_guard(destinations)  # one rule covers every lane

    def ensure_steering(self) -> bool:
        self.steering.lanes = lanes_in_use(len(self.lanes), self.backend())
        changed = self.steering.ensure()
        if self.steering.lanes > 1:
            self.balancer.start()  # places new flows from now on by the lanes' load
        return changed

    def close(self) -> None:
        self.balancer.stop()
        for lane in self.lanes:
            lane.close()
