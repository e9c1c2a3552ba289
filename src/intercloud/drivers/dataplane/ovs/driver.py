"""The Open vSwitch data plane, as in the paper: a bridge br-cloud patched to br-int, the OVS
agent's local VLANs translated to tunnel IDs by OpenFlow, tunnel ports with key=flow.

Mapping of the HostState contract:
- `Attachment(net_uuid, bridge)`: the network behind `bridge` has a local side, the VLAN that
  the Neutron OVS agent gave it on br-int (the `tag` of br-int ports whose
  `other_config:net_uuid` is `net_uuid`). br-int runs NORMAL; our patch port there is a trunk.
- `Bridge(name)`: one expanded network; no OVS object of its own, a record only.
- `Vxlan`: one network's tunnel to one peer, tunnel id `vni`. All networks share ONE tunnel
  port per (type, local, remote, UDP port), options key=flow; the flows pick the tunnel id.
- The flows of br-cloud are a pure function of the records (flows.py), written whole with
  `ovs-ofctl --bundle replace-flows` (atomic; OVS applies only the difference).

Records: what ensure_* was asked lives in br-cloud's external_ids (records.py), so observe()
returns it exactly. observe() still checks reality and names in the snapshot's `drift` what is
wrong:
- patch ports or br-cloud's fail_mode wrong, or the flow table differs from what the records
  give (`ovs-ofctl diff-flows`, by exit status and empty output): every Bridge drifts, so the
  plan calls ensure_bridge, which repairs and rewrites the table (in place: no port is
  removed, and unwanted bridges are still removed in the same pass);
- a tunnel port missing or with other options: that Vxlan drifts, so the plan removes and
  re-creates it.

Rate limits: one OpenFlow meter per limited Vxlan (ids and flows in flows.py), set with
`ovs-ofctl add-meter/mod-meter` before the flows that use them, removed after; the ids we
installed are recorded too (`ic:meters:`). A meter deleted behind our back takes its flows with
it (OpenFlow), so diff-flows sees the drift; a meter's rate changed behind our back is not seen
(that would need parsing dump-meters). Ids follow the sorted names of the limited tunnels, so
adding one may renumber others: between the meter writes and the (atomic) flow write, a
renumbered tunnel briefly runs at its neighbour's rate.

MTU: Vxlan.mtu is recorded only. The userspace datapath does not fragment tunnel packets, so
the VMs' MTU must leave room for the encapsulation (Neutron's network MTU does: 1450 for VXLAN
over 1500) or the underlay must be larger; else full-size frames vanish (ping works, TCP stalls).

Not supported: MSS clamping (base class refuses); MAC learning (replace-flows/diff-flows own
the whole table: learned flows would be wiped by every write and show as drift; unicast is
flooded to the network's peers, as broadcast); Patch objects.

Encryption: the userspace datapath builds tunnel packets itself and sends them out of the OVS
bridge that holds the route to the remote (br-phy), never through the kernel's IP stack, so
neither XFRM nor charon's kernel-libipsec (a TUN device plus routes in table 220) sees them.
OVS 3.1 does learn the table-220 route, but a route whose device is not an OVS bridge makes
`ofproto/trace` say "native tunnel routing failed" (checked here). So this driver serves
`[dataplane] tunnels = "ovs"` only (Geneve, GRE); the default, kernel.py, keeps br-cloud and
the VLANs but makes the tunnels kernel VXLAN devices, which IPsec protects.

Modules: ovsdb.py (OVSDB rows and transactions), records.py, names.py, flows.py (the table, a
pure function), table.py (ovs-ofctl on br-cloud), this driver.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable

from intercloud.domain.hoststate import Attachment, Bridge, HostState, Observed, Patch, Vxlan
from intercloud.drivers.dataplane.base import Dataplane
from intercloud.drivers.dataplane.ovs import flows, names
from intercloud.drivers.dataplane.ovs import records as rec
from intercloud.drivers.dataplane.ovs.names import TUNNEL_TYPES
from intercloud.drivers.dataplane.ovs.ovsdb import Ovsdb, ofport_of, one
from intercloud.drivers.dataplane.ovs.table import FlowTable
from intercloud.errors import DriverError


class OvsDataplane(Dataplane):
    """br-cloud (OpenFlow) patched to br-int, through OVSDB (`db`, e.g. unix:/run/ovs/db.sock)
    and the bridge's management socket `<rundir>/<bridge>.mgmt`."""

    def __init__(
        self,
        prefix: str,
        db: str,
        rundir: str,
        integration_bridge: str = "br-int",
        cloud_bridge: str = "br-cloud",
        tunnel_type: str = "vxlan",
        *,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(prefix)
        if tunnel_type not in TUNNEL_TYPES:
            raise DriverError(
                f"ovs data plane: tunnel_type must be one of {', '.join(TUNNEL_TYPES)}, "
                f"got {tunnel_type!r}"
            )
        self.br_int = integration_bridge
        self.br_cloud = cloud_bridge
        self.tunnel_type = tunnel_type
        self.supported_tunnels = (tunnel_type,)
        self.ovsdb = Ovsdb(db, timeout)
        self.table = FlowTable(cloud_bridge, rundir, timeout)

    # -- names -------------------------------------------------------------------------------

    def patch_names(self) -> tuple[str, str]:
        """(our patch port in br-int, its peer in br-cloud)."""
        return names.patch_names(self.prefix)

    def tunnel_port(self, vx: Vxlan) -> str:
        """The shared tunnel port for vx's endpoints (<= 13 characters)."""
        return names.tunnel_port(names.prefix_of(vx.name, self.prefix), self.tunnel_type, vx)

    def _records(self) -> rec.Records:
        return rec.parse(self.ovsdb.records(self.br_cloud))

    def set_records(self, **items: object) -> None:
        self.ovsdb.set_records(self.br_cloud, **items)

    # -- base objects ------------------------------------------------------------------------

    def ensure_base(self, prefix: str) -> None:
        """br-cloud (secure, same datapath as br-int) and the patch pair, if not as wanted."""
        db = self.ovsdb
        if not db.bridge_exists(self.br_int):
            raise DriverError(
                f"cannot patch {self.br_cloud} to {self.br_int}: no such bridge "
                "(is the Neutron OVS agent running?)"
            )
        dp = db.bridge_row(self.br_int, "datapath_type")
        # Patch ports only join bridges of one datapath; netdev when br-int says nothing
        # here would be wrong on a kernel-datapath node, so follow br-int when it says.
        dp_type = (dp or {}).get("datapath_type") or "netdev"
        cloud = db.bridge_row(self.br_cloud, "fail_mode", "datapath_type")
        in_int, in_cloud = names.patch_names(prefix)
        ifaces_int = db.interfaces(self.br_int)
        ifaces_cloud = db.interfaces(self.br_cloud)
        cmds = []
        if cloud is None or cloud["datapath_type"] != dp_type:
            cmds.append(db.api.add_br(self.br_cloud, may_exist=True, datapath_type=dp_type))
        if cloud is None or one(cloud["fail_mode"]) != "secure":
            cmds.append(db.api.db_set("Bridge", self.br_cloud, ("fail_mode", "secure")))
        for bridge, name, peer, ifaces in (
            (self.br_int, in_int, in_cloud, ifaces_int),
            (self.br_cloud, in_cloud, in_int, ifaces_cloud),
        ):
            cmds += db.port_cmds(bridge, name, ifaces.get(name), "patch", {"peer": peer})
        if cmds:
            db.commit(f"create {self.br_cloud} and its patch to {self.br_int}", *cmds)
            self.table.forget()  # a new (or re-typed) bridge starts with an empty table
            db.ofport(in_cloud)  # the flows need its number

    # -- flows -------------------------------------------------------------------------------

    def _expected(self, records: rec.Records) -> tuple[str, dict[int, int]]:
        """The flow table the records give, and the meters it uses (id -> kbit/s)."""
        ifaces = self.ovsdb.interfaces(self.br_cloud)
        ofports: dict[str, int] = {}
        for vx in records.vxlans.values():
            port = ofport_of(ifaces.get(self.tunnel_port(vx)))
            if port is not None:
                ofports[vx.name] = port
        by_net = self.ovsdb.vlans_by_net(self.br_int)
        vlans = {
            att.master: by_net[att.interface]
            for att in records.attachments.values()
            if att.interface in by_net
        }
        prefixes = {names.prefix_of(b, self.prefix) for b in records.bridges}
        patch_ofport = None
        if len(prefixes) == 1:
            patch_ofport = ofport_of(ifaces.get(names.patch_names(prefixes.pop())[1]))
        nofwd = records.no_forward
        pairs = set().union(*nofwd.values()) if nofwd else set()
        meters = flows.meters(records.vxlans.values())
        ids = {name: meter for name, (meter, _) in meters.items()}
        lines = flows.flows(
            records.bridges,
            records.vxlans.values(),
            ofports,
            vlans,
            patch_ofport,
            pairs,
            meter_ids=ids,
        )
        return flows.text(lines), dict(meters.values())

    def _write_flows(self) -> None:
        if not self.ovsdb.bridge_exists(self.br_cloud):
            return
        raw = self.ovsdb.records(self.br_cloud)
        want, meters = self._expected(rec.parse(raw))
        if self.table.write(want, meters, rec.meters(raw)) and rec.meters(raw) != meters:
            self.set_records(**{rec.METERS: sorted(meters.items()) or None})

    # -- observation -------------------------------------------------------------------------

    def observe(self, foreign: Iterable[str] = ()) -> Observed:
        foreign = list(foreign)
        kinds = self.kinds(foreign)
        cloud = self.ovsdb.bridge_row(self.br_cloud, "fail_mode", "external_ids")
        if cloud is None:
            self.table.forget()
            return Observed(HostState(), kinds)
        records = rec.parse(rec.ours(cloud["external_ids"]))
        state = HostState()
        drift: set[str] = set()
        n, prefix = len(self.prefix), self.prefix

        def ours(name: str, tag: str) -> bool:
            return name[:n] == prefix and name[n : n + 1] == tag

        ifaces = self.ovsdb.interfaces(self.br_cloud)
        base_ok = self.base_sound(cloud, ifaces)
        flows_ok = self.table.matches(self._expected(records)[0])
        for name, br in records.bridges.items():
            if ours(name, "b"):
                state.add(br)
                if not (base_ok and flows_ok):  # ensure_bridge repairs and rewrites
                    drift.add(name)
        for name, vx in records.vxlans.items():
            if ours(name, "v"):
                state.add(vx)
                if not self._port_sound(ifaces.get(self.tunnel_port(vx)), vx):
                    drift.add(name)  # missing or altered: removed and made again
        for att in records.attachments.values():
            if att.master in records.bridges and ours(att.master, "b"):
                state.add(att)
        state.no_forward = set(records.no_forward.get(prefix, set()))
        return Observed(state, kinds, frozenset(drift))

    def base_sound(self, cloud: dict, ifaces: dict[str, dict]) -> bool:
        """br-cloud secure (`cloud`: its row) and both patch ports as we make them."""
        in_int, in_cloud = self.patch_names()
        int_port = self.ovsdb.interfaces(self.br_int).get(in_int)
        cloud_port = ifaces.get(in_cloud)
        return (
            one(cloud["fail_mode"]) == "secure"
            and int_port is not None
            and int_port["options"] == {"peer": in_cloud}
            and cloud_port is not None
            and cloud_port["options"] == {"peer": in_int}
        )

    def _port_sound(self, cur: dict | None, vx: Vxlan) -> bool:
        return (
            cur is not None
            and cur["type"] == self.tunnel_type
            and cur["options"] == names.tunnel_options(self.tunnel_type, vx)
            and ofport_of(cur) is not None
        )

    def interface_kind(self, name: str) -> str | None:
        """'other' for a Neutron network id (the cloud driver vouches that it exists), else
        None. A network has a local VLAN only while a port of it is on this host's br-int:
        until then it is attached with no local side (tunnels only), and the flows follow as
        soon as the OVS agent tags a port of it (observe() sees the flows differ)."""
        try:
            uuid.UUID(name)
        except ValueError:
            return None
        return "other"

    # -- verbs -------------------------------------------------------------------------------

    def ensure_bridge(self, bridge: Bridge) -> None:
        self.ensure_base(names.prefix_of(bridge.name, self.prefix))
        self.set_records(**{f"bridge:{bridge.name}": {"mtu": bridge.mtu}})
        self._write_flows()

    def ensure_vxlan(self, vxlan: Vxlan) -> None:
        if vxlan.master not in self._records().bridges:
            raise DriverError(
                f"cannot put tunnel {vxlan.name} in network {vxlan.master}: no such network"
            )
        self.ensure_base(names.prefix_of(vxlan.name, self.prefix))
        port = self.tunnel_port(vxlan)
        cur = self.ovsdb.interfaces(self.br_cloud).get(port)
        opts = names.tunnel_options(self.tunnel_type, vxlan)
        cmds = self.ovsdb.port_cmds(self.br_cloud, port, cur, self.tunnel_type, opts)
        if cmds:
            self.ovsdb.commit(f"create tunnel port {port} for {vxlan.name}", *cmds)
        self.ovsdb.ofport(port)
        self.set_records(**{f"vxlan:{vxlan.name}": dataclasses.asdict(vxlan)})
        self._write_flows()
        self._collect_ports()

    def ensure_patch(self, patch: Patch) -> None:
        raise DriverError(
            f"the ovs data plane makes no patch {patch.name}: br-cloud joins {self.br_int} by its "
            "own patch ports, and a network's local side is a Neutron network id (its VLAN)"
        )

    def attach(self, attachment: Attachment) -> None:
        if attachment.master not in self._records().bridges:
            raise DriverError(
                f"cannot attach {attachment.interface} to {attachment.master}: no such network"
            )
        if self.interface_kind(attachment.interface) is None:
            raise DriverError(
                f"cannot attach {attachment.interface} to {attachment.master}: not a Neutron "
                "network id (the ovs data plane finds a network's VLAN by its id)"
            )
        self.set_records(**{f"attach:{attachment.interface}": {"master": attachment.master}})
        self._write_flows()

    def detach(self, interface: str) -> None:
        if f"{rec.REC}attach:{interface}" in self.ovsdb.records(self.br_cloud):
            self.set_records(**{f"attach:{interface}": None})
            self._write_flows()

    def remove_link(self, name: str) -> None:
        raw = self.ovsdb.records(self.br_cloud)
        # a bridge or tunnel record (attachments go by detach, relay filters by prefix)
        gone = {f"{k}:{name}": None for k in ("bridge", "vxlan") if f"{rec.REC}{k}:{name}" in raw}
        if f"bridge:{name}" in gone:
            # as deleting a Linux bridge frees its ports: no attachment record outlives it
            atts = rec.parse(raw).attachments.values()
            gone |= {f"attach:{a.interface}": None for a in atts if a.master == name}
        if gone:
            self.set_records(**gone)
            self._write_flows()
            self._collect_ports()

    def ensure_no_forward(self, pairs: Iterable[tuple[str, str]]) -> None:
        wanted = sorted(set(pairs))
        if not wanted and not self.ovsdb.bridge_exists(self.br_cloud):
            return
        self.ensure_base(self.prefix)
        self.set_records(**{f"nofwd:{self.prefix}": [list(p) for p in wanted] if wanted else None})
        self._write_flows()

    def remove_no_forward(self) -> None:
        if self.ovsdb.bridge_exists(self.br_cloud):
            self.set_records(**{f"nofwd:{self.prefix}": None})
            self._write_flows()

    def observe_no_forward(self) -> set[tuple[str, str]]:
        return set(self._records().no_forward.get(self.prefix, set()))

    def cleanup(self) -> None:
        """br-cloud (with its tunnel ports and records) and our patch port in br-int."""
        in_int, _ = self.patch_names()
        cmds = [self.ovsdb.api.del_br(self.br_cloud, if_exists=True)]
        if self.ovsdb.bridge_exists(self.br_int):
            cmds.append(self.ovsdb.api.del_port(in_int, self.br_int, if_exists=True))
        self.ovsdb.commit(f"remove {self.br_cloud} and {in_int}", *cmds)
        self.table.forget()

    def close(self) -> None:
        self.ovsdb.close()

    # -- helpers -----------------------------------------------------------------------------

    def _collect_ports(self) -> None:
        """Delete tunnel ports that no recorded Vxlan uses any more."""
        needed = {self.tunnel_port(v) for v in self._records().vxlans.values()}
        ifaces = self.ovsdb.interfaces(self.br_cloud)
        stale = [
            name
            for name, row in ifaces.items()
            if row["type"] in TUNNEL_TYPES and name not in needed
        ]
        if stale:
            self.ovsdb.commit(
                "delete unused tunnel ports",
                *(self.ovsdb.api.del_port(n, self.br_cloud, if_exists=True) for n in stale),
            )
