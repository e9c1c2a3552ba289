"""Desired host state from stored expansions and replicas. Pure: rows in, HostState out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from intercloud.domain import naming, relay
from intercloud.domain.hoststate import Attachment, Bridge, HostState, Vxlan
from intercloud.domain.owners import Owner

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
class PortWant:
    """One tunnel port (VXLAN device) of one network toward one peer, and whom it serves."""

    owner: Owner  # a target (origin), a replica (its port to the origin) or an adjacency
    peer: str
    vni: int | None
    rate_mbit: float | None = None  # egress limit of this network toward this peer
    blocked: str = ""  # why not to build it although the link is ready (e.g. peer unreachable)
    failed: str = ""  # why it cannot be built: an error (e.g. the cloud refused its network)


@dataclass(frozen=True)
class NetworkWant:
    key: str  # `Owner.key` of its expansion or replica ("e3", "r5"): names its bridge
    local_interface: str | None  # operator interface or bridge; None on the replica side
    ports: tuple[PortWant, ...]
    # (from, to) pairs of members this host relays between (domain/relay.py); with none, the
    # tunnel ports are isolated bridge ports, else the bridge drops every other pair
    forward: frozenset[tuple[str, str]] = frozenset()


@dataclass
class DesiredResult:
    state: HostState
    # why an owner's tunnel port is not in the desired state (for its status)
    blocked: dict[Owner, str] = field(default_factory=dict)
    # why an owner's tunnel port cannot be built at all (an error, not a wait)
    failed: dict[Owner, str] = field(default_factory=dict)
    # owner -> interface names that must exist for it to be realized
    needs: dict[Owner, set[str]] = field(default_factory=dict)
    # network key -> the bridge its tunnel ports join (ours, or the operator's own bridge)
    masters: dict[str, str] = field(default_factory=dict)


def build(
    prefix: str,
    port: int,
    networks: list[NetworkWant],
    links: dict[str, LinkView],
    kinds: Mapping[str, str | None],
) -> DesiredResult:
    """`kinds[interface]`: what a network's local interface is ("bridge", another kind, or
    None: it does not exist), as the data plane observed it."""
    result = DesiredResult(HostState())
    for net in networks:
        ports = _buildable(net, links, result)
        if not ports:
            continue
        joined = _local_side(prefix, net, kinds, result.state)
        if joined is None:
            for t, _ in ports:
                result.blocked[t.owner] = f"local interface {net.local_interface} does not exist"
            continue
        bridge, needs = joined
        result.masters[net.key] = bridge
        port_of: dict[str, str] = {}
        for t, link in ports:
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


def _buildable(
    net: NetworkWant, links: dict[str, LinkView], result: DesiredResult
) -> list[tuple[PortWant, LinkView]]:
    """The network's ports that may be built, with their link; why not the others."""
    out = []
    blocked = result.blocked
    for t in net.ports:
        link = links.get(t.peer)
        if t.failed:
            result.failed[t.owner] = t.failed
        elif t.blocked:
            blocked[t.owner] = t.blocked
        elif t.vni is None:
            blocked[t.owner] = "waiting for a VNI"
        elif link is None:
            blocked[t.owner] = f"no link to peer {t.peer}"
        elif not link.enabled:
            blocked[t.owner] = f"the link to peer {t.peer} is disabled"
        elif not link.ready:
            # Never send tunnel traffic in clear on an encrypted link.
            blocked[t.owner] = link.not_ready_reason
        else:
            out.append((t, link))
    return out


def _local_side(
    prefix: str, net: NetworkWant, kinds: Mapping[str, str | None], state: HostState
) -> tuple[str, set[str]] | None:
    """The bridge the network's tunnel ports join, and the interfaces they need (None: the
    local interface does not exist). The operator's own bridge is joined directly: a bridge
    of ours beside it would cost every frame a veth and a second bridge. Anything else joins
    a bridge of ours."""
    bridge = naming.bridge(prefix, net.key)
    if net.local_interface is None:
        state.add(Bridge(bridge))
        return bridge, {bridge}
    kind = kinds.get(net.local_interface)
    if kind is None:
        return None
    if kind == "bridge":
        return net.local_interface, {net.local_interface}
    state.add(Bridge(bridge))
    state.add(Attachment(net.local_interface, bridge))
    return bridge, {bridge}
