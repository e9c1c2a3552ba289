"""What the data plane should look like on one host (desired) or does look like (observed).

Both sides are plain values, so the reconciler's diff (plan.py) is a pure function."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Bridge:
    name: str
    mtu: int | None = None


@dataclass(frozen=True, order=True)
class Vxlan:
    """One tunnel to one peer: floods only to `remote`."""

    name: str
    vni: int
    local: str
    remote: str
    master: str
    port: int = 4789
    mtu: int | None = None
    isolated: bool = False


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

    def add(self, obj: Bridge | Vxlan | Patch | Attachment) -> None:
        if isinstance(obj, Bridge):
            self.bridges[obj.name] = obj
        elif isinstance(obj, Vxlan):
            self.vxlans[obj.name] = obj
        elif isinstance(obj, Patch):
            self.patches[obj.name] = obj
        else:
            self.attachments[obj.interface] = obj

    def interface_names(self) -> set[str]:
        names = set(self.bridges) | set(self.vxlans)
        for p in self.patches.values():
            names |= {p.name, p.peer}
        return names
