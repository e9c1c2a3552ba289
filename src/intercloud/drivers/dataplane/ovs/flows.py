"""The OpenFlow table of br-cloud as a pure function of what the OVS driver recorded.

Table 0. Per expanded network (our Bridge record, no OVS object of its own):
- local side (our patch port from br-int, the network's local VLAN T):
  `in_port=PATCH,dl_vlan=T -> pop_vlan, then per tunnel of the network: tun_id=VNI, output`
  (a broadcast goes only to the peers the network is expanded to);
- each tunnel (shared tunnel port X, tunnel id V):
  `in_port=X,tun_id=V -> [relay: tun_id=VNI', output X' for the network's other tunnels,
  unless isolated or the pair is in no_forward], push VLAN T, output PATCH`;
- everything else: the lowest-priority drop (br-cloud is fail_mode=secure).

Rate limits (Vxlan.rate_mbit): the copy towards a limited tunnel goes through an OpenFlow
meter in table 1 (`reg1=<meter id> -> meter, tun_id, output`), reached by
`clone(check_pkt_larger(1)->reg0[0], reg1=<id>, resubmit(,1))`. Why the check_pkt_larger: a
meter that drops ends the whole datapath action list, and OVS elides a clone whose actions it
deems reversible (a resubmit is), so without it a limited peer would also starve the other
peers and the local side; check_pkt_len is not reversible, so the datapath really copies the
packet and the meter drops only that copy (measured: trace and throughput).

Written for OpenFlow 1.3 (meters need it) in the form OVS dumps it back (`pop_vlan`,
`push_vlan` + `set_field:4096+T->vlan_vid`, `load:...->NXM_NX_TUN_ID[]`): `ovs-ofctl
diff-flows` compares flows as OVS prints them, so a converged bridge diffs empty. Ports are
OpenFlow port numbers resolved by the caller; a tunnel whose port number is unknown is left out
(its port is missing: observe() reports it so and the plan re-creates it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from intercloud.domain.hoststate import Vxlan

LOCAL_PRIORITY = 10
TUNNEL_PRIORITY = 10
DROP_PRIORITY = 0
METER_TABLE = 1
OPENFLOW = "OpenFlow13"  # the version every ovs-ofctl call on br-cloud uses
VLAN_PRESENT = 0x1000  # OFPVID_PRESENT: set_field of vlan_vid carries it


@dataclass(frozen=True)
class Tunnel:
    """A Vxlan record with its tunnel port's OpenFlow number."""

    name: str
    vni: int
    ofport: int
    isolated: bool
    meter: int | None = None


def _send(tunnel: Tunnel) -> str:
    return f"load:{tunnel.vni:#x}->NXM_NX_TUN_ID[],output:{tunnel.ofport}"


def _to(tunnel: Tunnel) -> str:
    """The actions that send a copy to `tunnel` (through its meter if it is rate-limited)."""
    if tunnel.meter is None:
        return _send(tunnel)
    return (
        f"clone(check_pkt_larger(1)->NXM_NX_REG0[0],load:{tunnel.meter:#x}->NXM_NX_REG1[],"
        f"resubmit(,{METER_TABLE}))"
    )


def meters(vxlans: Iterable[Vxlan]) -> dict[str, tuple[int, int]]:
    """Vxlan name -> (meter id, rate in kbit/s) for the rate-limited ones; ids 1.. by name."""
    limited = sorted(
        (vx.name, round(vx.rate_mbit * 1000)) for vx in vxlans if vx.rate_mbit is not None
    )
    return {name: (i, kbit) for i, (name, kbit) in enumerate(limited, 1)}


def meter_spec(meter: int, kbit: int) -> str:
    """`ovs-ofctl add-meter/mod-meter` argument: drop above `kbit`; bursts of 200 ms (with 50 ms,
    TCP through this policer got a quarter of the rate here; with 200 ms, the rate)."""
    return f"meter={meter},kbps,burst,band=type=drop,rate={kbit},burst_size={max(kbit // 5, 64)}"


def flows(
    bridges: Iterable[str],
    vxlans: Iterable[Vxlan],
    ofports: Mapping[str, int],
    vlans: Mapping[str, int],
    patch_ofport: int | None,
    no_forward: Iterable[tuple[str, str]] = (),
    meter_ids: Mapping[str, int] | None = None,
) -> list[str]:
    """The whole flow table of br-cloud, one `ovs-ofctl` flow per line, sorted.

    `bridges`: our networks; `vxlans`: their tunnels (`master` names the network);
    `ofports`: Vxlan name -> OpenFlow port of its (shared) tunnel port; `vlans`: network ->
    local VLAN on br-int (absent: the network has no local side); `patch_ofport`: our patch
    port in br-cloud (None: not there yet, no local side at all); `no_forward`: (in, out)
    pairs of Vxlan names not to relay between; `meter_ids`: Vxlan name -> meter id
    of the rate-limited ones (see meters())."""
    nets = set(bridges)
    blocked = set(no_forward)
    meter_ids = meter_ids or {}
    members: dict[str, list[Tunnel]] = {net: [] for net in nets}
    for vx in vxlans:
        if vx.master in nets and vx.name in ofports:
            members[vx.master].append(
                Tunnel(vx.name, vx.vni, ofports[vx.name], vx.isolated, meter_ids.get(vx.name))
            )

    out = [f"table=0,priority={DROP_PRIORITY},actions=drop"]
    for net in sorted(nets):
        tunnels = sorted(members[net], key=lambda t: t.name)
        vlan = vlans.get(net) if patch_ofport is not None else None
        if vlan is not None and tunnels:
            actions = ",".join(["pop_vlan", *(_to(t) for t in tunnels)])
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
                acts.append(
                    f"push_vlan:0x8100,set_field:{VLAN_PRESENT | vlan}->vlan_vid,"
                    f"output:{patch_ofport}"
                )
            if acts:
                out.append(
                    f"table=0,priority={TUNNEL_PRIORITY},in_port={src.ofport},"
                    f"tun_id={src.vni:#x},actions={','.join(acts)}"
                )
        for t in tunnels:
            if t.meter is not None:
                out.append(
                    f"table={METER_TABLE},priority={TUNNEL_PRIORITY},reg1={t.meter:#x},"
                    f"actions=meter:{t.meter},{_send(t)}"
                )
    return sorted(out)


def text(lines: Iterable[str]) -> str:
    """The input of `ovs-ofctl replace-flows` / `diff-flows`."""
    return "".join(f"{line}\n" for line in lines)
