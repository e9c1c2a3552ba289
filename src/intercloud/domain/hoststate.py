"""What the data plane should look like on one host (desired) or does look like (observed).

Both sides are plain values, so the reconciler's diff (plan.py) is a pure function."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace


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
    # Observed only: the host's MSS clamp table (interface -> MSS) where it is not exactly what
    # the tunnels' `Vxlan.mss` say (rules naming interfaces that are gone, or not as we write
    # them: 0, see the drivers). None: the tunnels say it all (always so in a desired state).
    clamp_table: dict[str, int] | None = None
    # (in port, out port) pairs our bridges must not forward between (the origin of a mesh
    # network does not relay between members that talk directly; see domain/relay.py)
    no_forward: set[tuple[str, str]] = field(default_factory=set)

    @property
    def mss_clamp(self) -> dict[str, int]:
        """The clamp table, interface -> MSS: the tunnels' `mss` unless an observed table
        differs from them."""
        if self.clamp_table is not None:
            return dict(self.clamp_table)
        return {n: vx.mss for n, vx in sorted(self.vxlans.items()) if vx.mss is not None}

    @mss_clamp.setter
    def mss_clamp(self, table: Mapping[str, int]) -> None:
        self.clamp_table = dict(table)

    def copy(self) -> HostState:
        """Another state with the same objects (they are frozen): changing one leaves the
        other as it was."""
        return HostState(
            dict(self.bridges),
            dict(self.vxlans),
            dict(self.patches),
            dict(self.attachments),
            None if self.clamp_table is None else dict(self.clamp_table),
            set(self.no_forward),
        )

    def add(self, obj: Bridge | Vxlan | Patch | Attachment) -> None:
        if isinstance(obj, Bridge):
            self.bridges[obj.name] = obj
        elif isinstance(obj, Vxlan):
            self.vxlans[obj.name] = obj
        elif isinstance(obj, Patch):
            self.patches[obj.name] = obj
        else:
            self.attachments[obj.interface] = obj

    def observed_clamps(self, table: Mapping[str, int]) -> None:
        """Record the host's clamp `table` in an observed state whose tunnels are added: each
        tunnel's `mss` from it, and the table itself only where the tunnels do not say it."""
        for name, vx in self.vxlans.items():
            mss = table.get(name) or None  # 0: a rule not as we write it
            if vx.mss != mss:
                self.vxlans[name] = replace(vx, mss=mss)
        if self.mss_clamp != dict(table):
            self.clamp_table = dict(table)

    def interface_names(self) -> set[str]:
        names = set(self.bridges) | set(self.vxlans)
        for p in self.patches.values():
            names |= {p.name, p.peer}
        return names


@dataclass(frozen=True)
class Observed:
    """One look at the host (a driver's observe()): its `state`; the kind ('bridge', 'veth',
    'vxlan', 'other'; None: absent) of each operator interface it was asked about; and the
    names of objects that exist as `state` says but are broken (an OVS tunnel port deleted
    behind our back, a flow table not as written): the plan makes them again; and `down`, the
    tunnel ports that are right but set down behind the plan's back (a gateway that stood
    down): the plan ensures them, which brings them up, without making them again."""

    state: HostState
    kinds: Mapping[str, str | None] = field(default_factory=dict)
    drift: frozenset[str] = frozenset()
    down: frozenset[str] = frozenset()
