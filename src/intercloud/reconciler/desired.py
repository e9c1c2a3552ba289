"""Desired host state from stored expansions and replicas. Pure: rows in, HostState out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from intercloud.domain import naming, relay
from intercloud.domain.hoststate import Attachment, Bridge, HostState, Patch, Vxlan

# VM-facing MTU of the tunnel ports: VMs keep their default 1500 and the encapsulated packets
# are fragmented on the underlay (VXLAN with DF unset), as the paper does.
TUNNEL_PORT_MTU = 1500


@dataclass(frozen=True)
class LinkView:
    peer: str
    local: str
    remote: str  # where the tunnel traffic goes: the peer's own address for it
    enabled: bool
    ready: bool = True  # False while an encrypted link's IPsec SA is not up
    not_ready_reason: str = ""
    mss: int | None = None  # clamp TCP MSS on this link's tunnel ports


@dataclass(frozen=True)
class TunnelWant:
    """One tunnel of one network: which object (target or replica) it serves."""

    owner: str  # "t:<id>" (origin), "r:<id>" (replica, to the origin), "a:<id>" (adjacency)
    peer: str
    vni: int | None
    rate_mbit: float | None = None  # egress limit of this network toward this peer
    blocked: str = ""  # why not to build it although the link is ready (e.g. peer unreachable)


@dataclass(frozen=True)
class NetworkWant:
    key: str  # "e<id>" or "r<id>"
    local_interface: str | None  # operator interface or bridge; None on the replica side
    tunnels: tuple[TunnelWant, ...]
    # (from, to) pairs of members this host relays between (domain/relay.py); with none, the
    # tunnel ports are isolated bridge ports, else the bridge drops every other pair
    forward: frozenset[tuple[str, str]] = frozenset()


@dataclass
class DesiredResult:
    state: HostState
    # why an owner's tunnel is not in the desired state (for its status)
    blocked: dict[str, str] = field(default_factory=dict)
    # owner -> interface names that must exist for it to be realized
    needs: dict[str, set[str]] = field(default_factory=dict)


def build(
    prefix: str,
    port: int,
    networks: list[NetworkWant],
    links: dict[str, LinkView],
    kinds: Mapping[str, str | None],
) -> DesiredResult:
    result = DesiredResult(HostState())
    for net in networks:
        tunnels = []
        for t in net.tunnels:
            link = links.get(t.peer)
            if t.blocked:
                result.blocked[t.owner] = t.blocked
            elif t.vni is None:
                result.blocked[t.owner] = "waiting for a VNI"
            elif link is None:
                result.blocked[t.owner] = f"no link to peer {t.peer}"
            elif not link.enabled:
                result.blocked[t.owner] = f"the link to peer {t.peer} is disabled"
            elif not link.ready:
                # Never send tunnel traffic in clear on an encrypted link.
                result.blocked[t.owner] = link.not_ready_reason
            else:
                tunnels.append((t, link))
        if not tunnels:
            continue
        bridge = naming.bridge(prefix, net.key)
        needs = {bridge}
        local_ok = True
        if net.local_interface is not None:
            kind = kinds.get(net.local_interface)
            if kind is None:
                local_ok = False
                for t, _ in tunnels:
                    result.blocked[t.owner] = (
                        f"local interface {net.local_interface} does not exist"
                    )
            elif kind == "bridge":
                ours, theirs = naming.patch(prefix, net.key)
                result.state.add(Patch(ours, theirs, bridge, net.local_interface))
                needs |= {ours, theirs}
            else:
                result.state.add(Attachment(net.local_interface, bridge))
        if not local_ok:
            continue
        result.state.add(Bridge(bridge))
        port_of: dict[str, str] = {}
        for t, link in tunnels:
            assert t.vni is not None
            name = naming.vxlan(prefix, t.vni)
            result.state.add(
                Vxlan(
                    name=name,
                    vni=t.vni,
                    local=link.local,
                    remote=link.remote,
                    master=bridge,
                    port=port,
                    mtu=TUNNEL_PORT_MTU,
                    isolated=not net.forward,
                    mss=link.mss,
                    rate_mbit=t.rate_mbit,
                )
            )
            result.needs[t.owner] = needs | {name}
            port_of[t.peer] = name
        if net.forward:
            result.state.no_forward |= relay.no_forward(port_of, net.forward)
    return result
