"""br-cloud's OpenFlow table when the tunnels are the kernel's (kernel.py): a pure function of
the expanded networks' local VLANs on br-int and the OpenFlow ports of their veths.

Per network (local VLAN T on br-int, its veth's port Q in br-cloud, our patch port P):
- `in_port=P,dl_vlan=T -> pop_vlan, output:Q` (a network not expanded here never leaves br-int);
- `in_port=Q -> push VLAN T, output:P`;
- everything else: the lowest-priority drop (br-cloud is fail_mode=secure).
Written in the form OVS dumps it back, so `ovs-ofctl diff-flows` of a converged bridge is empty."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from intercloud.drivers.dataplane.ovs.flows import DROP_PRIORITY, LOCAL_PRIORITY, VLAN_PRESENT


@dataclass(frozen=True)
class Join:
    network: str  # our Linux bridge of the network
    vlan: int  # its local VLAN on br-int
    ofport: int  # its veth's OpenFlow port in br-cloud


def flows(joins: Iterable[Join], patch_ofport: int | None) -> list[str]:
    """The whole table, one `ovs-ofctl` flow per line, sorted."""
    out = [f"table=0,priority={DROP_PRIORITY},actions=drop"]
    if patch_ofport is None:
        return out
    for j in sorted(joins, key=lambda j: j.network):
        out.append(
            f"table=0,priority={LOCAL_PRIORITY},in_port={patch_ofport},dl_vlan={j.vlan},"
            f"actions=pop_vlan,output:{j.ofport}"
        )
        out.append(
            f"table=0,priority={LOCAL_PRIORITY},in_port={j.ofport},"
            f"actions=push_vlan:0x8100,set_field:{VLAN_PRESENT | j.vlan}->vlan_vid,"
            f"output:{patch_ofport}"
        )
    return sorted(out)


def text(lines: Iterable[str]) -> str:
    """The input of `ovs-ofctl replace-flows` / `diff-flows`."""
    return "".join(f"{line}\n" for line in lines)
