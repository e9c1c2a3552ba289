"""The reconciler's heart: desired vs observed host state -> an ordered list of driver calls.

Pure, so a converged host yields an empty plan (idempotence is a property we test)."""

from __future__ import annotations

from dataclasses import dataclass

from intercloud.domain.hoststate import Attachment, Bridge, HostState, Patch, Vxlan


@dataclass(frozen=True)
class Step:
    """One driver call. `verb` is the driver method; `obj` its argument."""

    verb: str
    obj: Bridge | Vxlan | Patch | Attachment | str

    def describe(self) -> str:
        target = self.obj if isinstance(self.obj, str) else getattr(self.obj, "name", None)
        if isinstance(self.obj, Attachment):
            target = f"{self.obj.interface}->{self.obj.master}"
        return f"{self.verb} {target}"


def plan(desired: HostState, observed: HostState) -> list[Step]:
    """Removals first (tunnels before bridges), then creations (bridges before ports)."""
    steps: list[Step] = []

    for name, att in sorted(observed.attachments.items()):
        want = desired.attachments.get(name)
        if want is None or want != att:
            steps.append(Step("detach", name))
    for name, vx in sorted(observed.vxlans.items()):
        if desired.vxlans.get(name) != vx:
            steps.append(Step("remove_link", name))
    for name, p in sorted(observed.patches.items()):
        if desired.patches.get(name) != p:
            steps.append(Step("remove_link", name))
    for name, br in sorted(observed.bridges.items()):
        want = desired.bridges.get(name)
        if want is None:
            steps.append(Step("remove_link", name))
        elif want != br:
            # Only the MTU can differ; changing it in place keeps the ports.
            steps.append(Step("ensure_bridge", want))

    for name, br in sorted(desired.bridges.items()):
        if name not in observed.bridges:
            steps.append(Step("ensure_bridge", br))
    for name, vx in sorted(desired.vxlans.items()):
        if observed.vxlans.get(name) != vx:
            steps.append(Step("ensure_vxlan", vx))
    for name, p in sorted(desired.patches.items()):
        if observed.patches.get(name) != p:
            steps.append(Step("ensure_patch", p))
    for name, att in sorted(desired.attachments.items()):
        if observed.attachments.get(name) != att:
            steps.append(Step("attach", att))
    return steps
