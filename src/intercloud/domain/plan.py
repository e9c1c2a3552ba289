"""The reconciler's heart: desired vs observed host state -> an ordered list of driver calls.

Pure, so a converged host yields an empty plan (idempotence is a property we test).

A VXLAN device's `mss`, `rate_mbit` and `isolated` never re-create it: the rate (its qdisc)
and the bridge-port flag are changed in place by ensure_vxlan, and the MSS clamps of all
tunnels are one nftables table, set by one `ensure_mss_clamp` step whose argument is the
whole wanted mapping (interface -> MSS).

The observed side is a driver's snapshot (hoststate.Observed): an object named in its `drift`
exists but is broken, so it gets its ensure step (a tunnel: removed and made again)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter

from intercloud.domain.hoststate import Attachment, Bridge, HostState, Observed, Patch, Vxlan


@dataclass(frozen=True)
class Step:
    """One driver call. `verb` is the driver method; `obj` its argument (for ensure_mss_clamp
    a dict interface -> MSS, sorted by name; an empty dict removes the clamp table)."""

    verb: str
    obj: Bridge | Vxlan | Patch | Attachment | dict[str, int] | frozenset | str

    def describe(self) -> str:
        target = self.obj if isinstance(self.obj, str) else getattr(self.obj, "name", None)
        if isinstance(self.obj, Attachment):
            target = f"{self.obj.interface}->{self.obj.master}"
        elif isinstance(self.obj, dict):
            target = ",".join(f"{k}={v}" for k, v in self.obj.items()) or "(none)"
        elif isinstance(self.obj, frozenset):
            target = ",".join(f"{i}>{o}" for i, o in sorted(self.obj)) or "(none)"
        return f"{self.verb} {target}"


def _fields_but(*left_out: str) -> Callable[[Vxlan], tuple]:
    return attrgetter(*(f.name for f in dataclasses.fields(Vxlan) if f.name not in left_out))


# Compared as tuples of fields: a copy of each tunnel through dataclasses.replace (its
# __init__ and checks, twice per tunnel and pass) was a tenth of the plan at 3,000 tunnels.
_TUNNEL = _fields_but("mss", "rate_mbit", "isolated")
_DEVICE = _fields_but("mss")


def _tunnel(vx: Vxlan | None) -> tuple | None:
    """What only a new device can change (everything but the in-place fields)."""
    return None if vx is None else _TUNNEL(vx)


def _device(vx: Vxlan | None) -> tuple | None:
    """What ensure_vxlan sets (the MSS clamp is a separate step)."""
    return None if vx is None else _DEVICE(vx)


def mss_clamp(state: HostState) -> dict[str, int]:
    """The clamp mapping a desired state asks for, from its tunnels' `mss` only."""
    return {n: vx.mss for n, vx in sorted(state.vxlans.items()) if vx.mss is not None}


def plan(desired: HostState, observed: Observed) -> list[Step]:
    """Removals first (tunnels before bridges), then creations (bridges before ports)."""
    seen = observed.state
    steps = _removals(desired, observed)
    # Clamps go in before any new tunnel forwards a SYN (rules match names, not devices).
    clamp = mss_clamp(desired)
    if clamp != seen.mss_clamp:
        steps.append(Step("ensure_mss_clamp", clamp))
    # Relay filters, too, match names: set them before a new port could forward a duplicate.
    if desired.no_forward != seen.no_forward:
        steps.append(Step("ensure_no_forward", frozenset(desired.no_forward)))
    return steps + _creations(desired, observed)


def _removals(desired: HostState, observed: Observed) -> list[Step]:
    """What goes (or, for a bridge, changes in place) before anything is made."""
    seen, drift = observed.state, observed.drift
    steps: list[Step] = []
    for name, att in sorted(seen.attachments.items()):
        want = desired.attachments.get(name)
        if want is None or want != att:
            steps.append(Step("detach", name))
    for name, vx in sorted(seen.vxlans.items()):
        if name in drift or _tunnel(desired.vxlans.get(name)) != _tunnel(vx):
            steps.append(Step("remove_link", name))
    for name, p in sorted(seen.patches.items()):
        if desired.patches.get(name) != p:
            steps.append(Step("remove_link", name))
    for name, br in sorted(seen.bridges.items()):
        wanted = desired.bridges.get(name)
        if wanted is None:
            steps.append(Step("remove_link", name))
        elif wanted != br or name in drift:
            # Only the MTU can differ (or the bridge is broken): in place keeps the ports.
            steps.append(Step("ensure_bridge", wanted))
    return steps


def _creations(desired: HostState, observed: Observed) -> list[Step]:
    """Bridges before the ports that go into them."""
    seen, drift = observed.state, observed.drift
    steps: list[Step] = []
    for name, br in sorted(desired.bridges.items()):
        if name not in seen.bridges:
            steps.append(Step("ensure_bridge", br))
    for name, vx in sorted(desired.vxlans.items()):
        stale = name in drift or name in observed.down
        if stale or _device(seen.vxlans.get(name)) != _device(vx):
            steps.append(Step("ensure_vxlan", vx))
    for name, p in sorted(desired.patches.items()):
        if seen.patches.get(name) != p:
            steps.append(Step("ensure_patch", p))
    for name, att in sorted(desired.attachments.items()):
        if seen.attachments.get(name) != att:
            steps.append(Step("attach", att))
    return steps
