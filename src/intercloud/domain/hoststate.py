"""What the data plane should look like on one host (desired) or does look like (observed).

Both sides are plain values, so the reconciler's diff (plan.py) is a pure function."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Bridge:
    name: str
    mtu: int | None = None


MIN_MSS = 88  # Linux's TCP_MIN_MSS


@dataclass(frozen=True, order=True)
class Vxlan:
    """One tunnel to one peer: floods only to `remote`.

    `mss`: clamp the TCP MSS of SYN and SYN/ACK crossing this port (both directions) to this
    value for IPv4 (IPv6: 20 less); None = no clamp. `rate_mbit`: egress rate limit of this
    device, i.e. of this expansion towards this peer, counted on the inner Ethernet frames;
    None = unlimited. It is rounded to whole kbit/s here, so what observe() reports equals it.
    Both change in place: a device whose only differences are these is never re-created."""

    name: str
    vni: int
    local: str
    remote: str
    master: str
    port: int = 4789
    mtu: int | None = None
    isolated: bool = False
    mss: int | None = None
    rate_mbit: float | None = None

    def __post_init__(self) -> None:
        if self.mss is not None and not MIN_MSS <= self.mss <= 65535:
            raise ValueError(f"{self.name}: mss must be in {MIN_MSS}..65535, got {self.mss}")
        if self.rate_mbit is not None:
            kbit = round(self.rate_mbit * 1000)
            if kbit < 1:
                raise ValueError(
                    f"{self.name}: rate_mbit must be at least 0.001, got {self.rate_mbit}"
                )
            object.__setattr__(self, "rate_mbit", kbit / 1000)


@dataclass(frozen=True, order=True)
class Patch:
    """A veth pair: `name` in our bridge `master`, `peer` in the operator's bridge."""

    name: str
    peer: str
    master: str
    peer_master: str


@dataclass(frozen=True, order=True)
class Attachment:
    """An operator's interface (not ours) enslaved to our bridge."""

    interface: str
    master: str


@dataclass
class HostState:
    bridges: dict[str, Bridge] = field(default_factory=dict)
    vxlans: dict[str, Vxlan] = field(default_factory=dict)
    patches: dict[str, Patch] = field(default_factory=dict)
    attachments: dict[str, Attachment] = field(default_factory=dict)
    # The MSS clamp table: interface -> MSS. Observed: what the host's table does (it may name
    # interfaces that are gone; 0 marks rules not as we write them, see the drivers). Desired:
    # plan() ignores it and reads Vxlan.mss; add() keeps it in step for comparisons.
    mss_clamp: dict[str, int] = field(default_factory=dict)
    # (in port, out port) pairs our bridges must not forward between (the origin of a mesh
    # network does not relay between members that talk directly; see domain/relay.py)
    no_forward: set[tuple[str, str]] = field(default_factory=set)

    def add(self, obj: Bridge | Vxlan | Patch | Attachment) -> None:
        if isinstance(obj, Bridge):
            self.bridges[obj.name] = obj
        elif isinstance(obj, Vxlan):
            self.vxlans[obj.name] = obj
            if obj.mss is not None:
                self.mss_clamp[obj.name] = obj.mss
            else:
                self.mss_clamp.pop(obj.name, None)
        elif isinstance(obj, Patch):
            self.patches[obj.name] = obj
        else:
            self.attachments[obj.interface] = obj

    def interface_names(self) -> set[str]:
        names = set(self.bridges) | set(self.vxlans)
        for p in self.patches.values():
            names |= {p.name, p.peer}
        return names
