"""The OpenFlow table of br-cloud as a pure function of what the OVS driver recorded.

One table (0). Per expanded network (our Bridge record, no OVS object of its own):
- local side (our patch port from br-int, the network's local VLAN T):
  `in_port=PATCH,dl_vlan=T -> strip_vlan, then per tunnel of the network: tun_id=VNI, output`
  (a broadcast goes only to the peers the network is expanded to);
- each tunnel (shared tunnel port X, tunnel id V):
  `in_port=X,tun_id=V -> [relay: tun_id=VNI', output X' for the network's other tunnels,
  unless isolated or the pair is in no_forward], mod_vlan_vid:T, output PATCH`;
- everything else: the lowest-priority drop (br-cloud is fail_mode=secure).

Actions are written in the form OVS dumps them back (`load:...->NXM_NX_TUN_ID[]`, not
`set_tunnel`), because `ovs-ofctl diff-flows` compares flows as text: a converged bridge then
diffs empty. Ports are OpenFlow port numbers resolved by the caller; a tunnel whose port number
is unknown is left out (its port is missing: observe() reports it so and the plan re-creates it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from intercloud.domain.hoststate import Vxlan

LOCAL_PRIORITY = 10
TUNNEL_PRIORITY = 10
DROP_PRIORITY = 0


@dataclass(frozen=True)
class Tunnel:
    """A Vxlan record with its tunnel port's OpenFlow number."""

    name: str
    vni: int
    ofport: int
    isolated: bool


def _to(tunnel: Tunnel) -> str:
    return f"load:{tunnel.vni:#x}->NXM_NX_TUN_ID[],output:{tunnel.ofport}"


def flows(
    bridges: Iterable[str],
    vxlans: Iterable[Vxlan],
    ofports: Mapping[str, int],
    vlans: Mapping[str, int],
    patch_ofport: int | None,
    no_forward: Iterable[tuple[str, str]] = (),
) -> list[str]:
    """The whole flow table of br-cloud, one `ovs-ofctl` flow per line, sorted.

    `bridges`: our networks; `vxlans`: their tunnels (`master` names the network);
    `ofports`: Vxlan name -> OpenFlow port of its (shared) tunnel port; `vlans`: network ->
    local VLAN on br-int (absent: the network has no local side); `patch_ofport`: our patch
    port in br-cloud (None: not there yet, no local side at all); `no_forward`: (in, out)
    pairs of Vxlan names not to relay between."""
    nets = set(bridges)
    blocked = set(no_forward)
    members: dict[str, list[Tunnel]] = {net: [] for net in nets}
    for vx in vxlans:
        if vx.master in nets and vx.name in ofports:
            members[vx.master].append(Tunnel(vx.name, vx.vni, ofports[vx.name], vx.isolated))

    out = [f"table=0,priority={DROP_PRIORITY},actions=drop"]
    for net in sorted(nets):
        tunnels = sorted(members[net], key=lambda t: t.name)
        vlan = vlans.get(net) if patch_ofport is not None else None
        if vlan is not None and tunnels:
            actions = ",".join(["strip_vlan", *(_to(t) for t in tunnels)])
            out.append(
                f"table=0,priority={LOCAL_PRIORITY},in_port={patch_ofport},dl_vlan={vlan},"
                f"actions={actions}"
            )
        for src in tunnels:
            acts: list[str] = []
            if not src.isolated:
                acts += [
                    _to(dst)
                    for dst in tunnels
                    if dst.name != src.name and (src.name, dst.name) not in blocked
                ]
            if vlan is not None:
                acts.append(f"mod_vlan_vid:{vlan},output:{patch_ofport}")
            if acts:
                out.append(
                    f"table=0,priority={TUNNEL_PRIORITY},in_port={src.ofport},"
                    f"tun_id={src.vni:#x},actions={','.join(acts)}"
                )
    return sorted(out)


def text(lines: Iterable[str]) -> str:
    """The input of `ovs-ofctl replace-flows` / `diff-flows`."""
    return "".join(f"{line}\n" for line in lines)
