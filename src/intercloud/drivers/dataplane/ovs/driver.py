"""The Open vSwitch data plane, as in the paper: a bridge br-cloud patched to br-int, the OVS
agent's local VLANs translated to tunnel IDs by OpenFlow, tunnel ports with key=flow.

Mapping of the HostState contract:
- `Attachment(net_uuid, bridge)`: the network behind `bridge` has a local side, the VLAN that
  the Neutron OVS agent gave it on br-int (the `tag` of br-int ports whose
  `other_config:net_uuid` is `net_uuid`). br-int runs NORMAL; our patch port there is a trunk.
- `Bridge(name)`: one expanded network; no OVS object of its own, a record only.
- `Vxlan`: one network's tunnel to one peer, tunnel id `vni`. All networks share ONE tunnel
  port per (type, local, remote, UDP port), options key=flow; the flows pick the tunnel id.
- The flows of br-cloud are a pure function of the records (ovs_flows.py), written whole with
  `ovs-ofctl --bundle replace-flows` (atomic; OVS applies only the difference).

Records: what ensure_* was asked lives in br-cloud's external_ids (`ic:bridge:<name>`,
`ic:vxlan:<name>`, `ic:attach:<net_uuid>`, `ic:nofwd:<prefix>`, JSON values), so observe()
returns it exactly. observe() still checks reality and reports a difference where it is wrong:
- patch ports or br-cloud's fail_mode wrong, or the flow table differs from what the records
  give (`ovs-ofctl diff-flows`, by exit status and empty output): every Bridge is reported with
  mtu=-1, so the plan calls ensure_bridge, which repairs and rewrites the table (in place: no
  port is removed, and unwanted bridges are still removed in the same pass);
- a tunnel port missing or with other options: that Vxlan is reported with port=0, so the plan
  removes and re-creates it.

Rate limits: one OpenFlow meter per limited Vxlan (ids and flows in ovs_flows), set with
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
`ofproto/trace` say "native tunnel routing failed" (checked here). Encrypting needs the IPsec
end outside OVS on the path: br-phy's uplink going through a kernel router (namespace) whose
charon protects the tunnel endpoints' traffic.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Iterable
from typing import Any

from intercloud.domain.hoststate import Attachment, Bridge, HostState, Patch, Vxlan
from intercloud.drivers.dataplane import ovs_flows
from intercloud.drivers.dataplane.base import Dataplane
from intercloud.errors import DriverError

TUNNEL_TYPES = ("vxlan", "geneve", "gre")
REC = "ic:"  # prefix of our record keys in br-cloud's external_ids
# What observe() reports where reality differs from the records (values no one can want):
DRIFT = -1  # Bridge.mtu: br-cloud, the patch ports or the flow table are not as recorded
DRIFT_PORT = 0  # Vxlan.port: its tunnel port is missing or altered
_BRIDGE_RE = re.compile(r"^(.+)b[er]\d+$")  # naming.bridge: <prefix>b<e|r><id>
_VXLAN_RE = re.compile(r"^(.+)v\d+$")  # naming.vxlan: <prefix>v<vni>


def _one(value: Any) -> Any:
    """An optional OVSDB column as ovsdbapp returns it: [] means unset."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


class OvsDataplane(Dataplane):
    """br-cloud (OpenFlow) patched to br-int, through OVSDB (`db`, e.g. unix:/run/ovs/db.sock)
    and the bridge's management socket `<rundir>/<bridge>.mgmt`."""

    def __init__(
        self,
        db: str,
        rundir: str,
        integration_bridge: str = "br-int",
        cloud_bridge: str = "br-cloud",
        tunnel_type: str = "vxlan",
        *,
        timeout: float = 10.0,
    ) -> None:
        if tunnel_type not in TUNNEL_TYPES:
            raise DriverError(
                f"ovs data plane: tunnel_type must be one of {', '.join(TUNNEL_TYPES)}, "
                f"got {tunnel_type!r}"
            )
        self.db = db
        self.rundir = rundir
        self.br_int = integration_bridge
        self.br_cloud = cloud_bridge
        self.tunnel_type = tunnel_type
        self.supported_tunnels = (tunnel_type,)
        self.timeout = timeout
        self._api: Any = None
        self._lock = threading.Lock()
        self._written: str | None = None  # the flow text last written (skip identical writes)
        self._meters: dict[int, int] = {}  # the meters last written: id -> kbit/s

    # -- OVSDB -------------------------------------------------------------------------------

    @property
    def api(self) -> Any:
        """The ovsdbapp API, connected on first use (the agent may start before OVS)."""
        with self._lock:
            if self._api is None:
                from ovsdbapp.backend.ovs_idl import connection
                from ovsdbapp.schema.open_vswitch import impl_idl

                try:
                    idl = connection.OvsdbIdl.from_server(self.db, "Open_vSwitch")
                    conn = connection.Connection(idl=idl, timeout=self.timeout)
                    # ovsdbapp keeps the connection in a class attribute: a subclass per
                    # driver lets several drivers (several OVS) live in one process.
                    cls = type("_Idl", (impl_idl.OvsdbIdl,), {"_ovsdb_connection": None})
                    self._api = cls(conn)
                except Exception as exc:
                    raise DriverError(f"cannot connect to OVSDB at {self.db}: {exc}") from exc
            return self._api

    def _read(self, cmd: Any, what: str) -> Any:
        try:
            return cmd.execute(check_error=True)
        except Exception as exc:
            raise DriverError(f"OVSDB {self.db}: cannot {what}: {exc}") from exc

    def _commit(self, what: str, *cmds: Any) -> None:
        try:
            with self.api.transaction(check_error=True) as txn:
                for cmd in cmds:
                    txn.add(cmd)
        except DriverError:
            raise
        except Exception as exc:
            raise DriverError(f"OVSDB {self.db}: cannot {what}: {exc}") from exc

    def _bridge_exists(self, name: str) -> bool:
        return bool(self._read(self.api.br_exists(name), f"look up bridge {name}"))

    def _bridge_row(self, name: str, *columns: str) -> dict[str, Any] | None:
        rows = self._read(
            self.api.db_list("Bridge", [name], columns=list(columns), if_exists=True),
            f"read bridge {name}",
        )
        return rows[0] if rows else None

    def _records(self) -> dict[str, str]:
        row = self._bridge_row(self.br_cloud, "external_ids")
        if row is None:
            return {}
        return {k: v for k, v in row["external_ids"].items() if k.startswith(REC)}

    def _interfaces(self, bridge: str) -> dict[str, dict[str, Any]]:
        """Interfaces of the ports of `bridge` (our ports have one interface of their name)."""
        if not self._bridge_exists(bridge):
            return {}
        names = set(self._read(self.api.list_ports(bridge), f"list ports of {bridge}"))
        rows = self._read(
            self.api.db_list("Interface", columns=["name", "type", "options", "ofport"]),
            "list interfaces",
        )
        return {r["name"]: r for r in rows if r["name"] in names}

    def _vlans_by_net(self) -> dict[str, int]:
        """net_uuid -> local VLAN, from the access ports of br-int (the OVS agent's tags)."""
        if not self._bridge_exists(self.br_int):
            return {}
        names = set(self._read(self.api.list_ports(self.br_int), "list ports of br-int"))
        rows = self._read(
            self.api.db_list("Port", columns=["name", "tag", "other_config"]), "list ports"
        )
        out: dict[str, int] = {}
        for r in rows:
            net, tag = r["other_config"].get("net_uuid"), _one(r["tag"])
            if r["name"] in names and net and tag is not None:
                out[net] = min(tag, out.get(net, tag))
        return out

    # -- names -------------------------------------------------------------------------------

    def _prefix_of(self, name: str) -> str:
        if self.prefix and name.startswith(self.prefix):
            return self.prefix
        m = _BRIDGE_RE.match(name) or _VXLAN_RE.match(name)
        if not m:
            raise DriverError(f"ovs data plane: cannot tell the agent prefix of {name!r}")
        return m.group(1)

    @staticmethod
    def patch_names(prefix: str) -> tuple[str, str]:
        """(our patch port in br-int, its peer in br-cloud); at most 15 characters."""
        return f"{prefix}-to-cloud", f"{prefix}-to-int"

    def tunnel_port(self, prefix: str, vx: Vxlan) -> str:
        """The shared tunnel port for vx's endpoints: `<prefix>t<crc32>` (<= 13 characters)."""
        key = f"{self.tunnel_type}|{vx.local}|{vx.remote}|{self._dst_port(vx)}"
        return f"{prefix}t{zlib.crc32(key.encode()):08x}"

    def _dst_port(self, vx: Vxlan) -> int | None:
        return vx.port if self.tunnel_type == "vxlan" else None

    def _tunnel_options(self, vx: Vxlan) -> dict[str, str]:
        opts = {"remote_ip": vx.remote, "key": "flow"}
        if vx.local:  # else OVS picks the source address from its route to remote_ip
            opts["local_ip"] = vx.local
        port = self._dst_port(vx)
        if port is not None:
            opts["dst_port"] = str(port)
        return opts

    # -- records -----------------------------------------------------------------------------

    @staticmethod
    def _parse(records: dict[str, str]) -> tuple[dict, dict, dict, dict]:
        bridges: dict[str, Bridge] = {}
        vxlans: dict[str, Vxlan] = {}
        atts: dict[str, Attachment] = {}
        nofwd: dict[str, set[tuple[str, str]]] = {}
        for key, raw in records.items():
            kind, _, name = key[len(REC) :].partition(":")
            try:
                value = json.loads(raw)
                if kind == "bridge":
                    bridges[name] = Bridge(name, mtu=value.get("mtu"))
                elif kind == "vxlan":
                    vxlans[name] = Vxlan(**value)
                elif kind == "attach":
                    atts[name] = Attachment(name, value["master"])
                elif kind == "nofwd":
                    nofwd[name] = {(a, b) for a, b in value}
            except (ValueError, TypeError, KeyError):
                continue  # not ours or damaged: the plan re-records it
        return bridges, vxlans, atts, nofwd

    def _set_records(self, **items: Any) -> None:
        """Write (value) or forget (None) records `kind:name`, e.g. _set_records(**{k: v})."""
        put = {REC + k: json.dumps(v, sort_keys=True) for k, v in items.items() if v is not None}
        drop = [REC + k for k, v in items.items() if v is None]
        cmds = []
        if put:
            cmds.append(self.api.db_set("Bridge", self.br_cloud, ("external_ids", put)))
        if drop:
            cmds.append(self.api.db_remove("Bridge", self.br_cloud, "external_ids", *drop))
        if cmds:
            self._commit("record state on " + self.br_cloud, *cmds)

    # -- base objects ------------------------------------------------------------------------

    def _ensure_base(self, prefix: str) -> None:
        """br-cloud (secure, same datapath as br-int) and the patch pair, if not as wanted."""
        if not self._bridge_exists(self.br_int):
            raise DriverError(
                f"cannot patch {self.br_cloud} to {self.br_int}: no such bridge "
                "(is the Neutron OVS agent running?)"
            )
        dp = self._bridge_row(self.br_int, "datapath_type")
        # Patch ports only join bridges of one datapath; netdev when br-int says nothing
        # here would be wrong on a kernel-datapath node, so follow br-int when it says.
        dp_type = (dp or {}).get("datapath_type") or "netdev"
        cloud = self._bridge_row(self.br_cloud, "fail_mode", "datapath_type")
        in_int, in_cloud = self.patch_names(prefix)
        ifaces_int = self._interfaces(self.br_int)
        ifaces_cloud = self._interfaces(self.br_cloud)
        cmds = []
        if cloud is None or cloud["datapath_type"] != dp_type:
            cmds.append(self.api.add_br(self.br_cloud, may_exist=True, datapath_type=dp_type))
        if cloud is None or _one(cloud["fail_mode"]) != "secure":
            cmds.append(self.api.db_set("Bridge", self.br_cloud, ("fail_mode", "secure")))
        for bridge, name, peer, ifaces in (
            (self.br_int, in_int, in_cloud, ifaces_int),
            (self.br_cloud, in_cloud, in_int, ifaces_cloud),
        ):
            cmds += self._port_cmds(bridge, name, ifaces.get(name), "patch", {"peer": peer})
        if cmds:
            self._commit(f"create {self.br_cloud} and its patch to {self.br_int}", *cmds)
            self._written = None  # a new (or re-typed) bridge starts with an empty table
            self._ofport(in_cloud)  # the flows need its number

    def _ofport(self, name: str) -> int:
        """The OpenFlow port of interface `name` (vswitchd fills it in after the commit)."""
        deadline = time.monotonic() + self.timeout
        while True:
            rows = self._read(
                self.api.db_list("Interface", [name], columns=["ofport"], if_exists=True),
                f"read interface {name}",
            )
            port = _one(rows[0]["ofport"]) if rows else None
            if port is not None and port > 0:
                return int(port)
            if time.monotonic() >= deadline:
                raise DriverError(f"OVS gave port {name} no OpenFlow number (see its log)")
            time.sleep(0.05)

    # -- flows -------------------------------------------------------------------------------

    def _target(self) -> str:
        return f"unix:{os.path.join(self.rundir, self.br_cloud)}.mgmt"

    def _expected(self, records: dict[str, str]) -> tuple[str, dict[int, int]]:
        """The flow table the records give, and the meters it uses (id -> kbit/s)."""
        bridges, vxlans, atts, nofwd = self._parse(records)
        ifaces = self._interfaces(self.br_cloud)
        ofports: dict[str, int] = {}
        for vx in vxlans.values():
            prefix = self._prefix_of(vx.name)
            cur = ifaces.get(self.tunnel_port(prefix, vx))
            port = _one(cur["ofport"]) if cur else None
            if port is not None and port > 0:
                ofports[vx.name] = int(port)
        by_net = self._vlans_by_net()
        vlans = {
            att.master: by_net[att.interface] for att in atts.values() if att.interface in by_net
        }
        prefixes = {self._prefix_of(b) for b in bridges}
        patch_ofport = None
        if len(prefixes) == 1:
            cur = ifaces.get(self.patch_names(prefixes.pop())[1])
            port = _one(cur["ofport"]) if cur else None
            patch_ofport = int(port) if port is not None and port > 0 else None
        pairs = set().union(*nofwd.values()) if nofwd else set()
        meters = ovs_flows.meters(vxlans.values())
        ids = {name: meter for name, (meter, _) in meters.items()}
        lines = ovs_flows.flows(
            bridges, vxlans.values(), ofports, vlans, patch_ofport, pairs, meter_ids=ids
        )
        return ovs_flows.text(lines), dict(meters.values())

    def _ofctl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                ["ovs-ofctl", "-O", ovs_flows.OPENFLOW, *args],
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.timeout * 3,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DriverError(f"ovs-ofctl {args[0]}: {exc}") from exc

    def _write_flows(self) -> None:
        if not self._bridge_exists(self.br_cloud):
            return
        records = self._records()
        want, meters = self._expected(records)
        if want == self._written and meters == self._meters:
            return
        had = self._recorded_meters(records) | self._meters
        # meters before the flows that use them (OVS refuses a flow with an unknown meter)
        for meter, kbit in sorted(meters.items()):
            if self._written is None or had.get(meter) != kbit:
                self._set_meter(meter, kbit)
        proc = self._ofctl("--bundle", "replace-flows", self._target(), "-", stdin=want)
        if proc.returncode != 0:
            self._written = None
            raise DriverError(
                f"cannot write the flows of {self.br_cloud}: {proc.stderr.strip()[-300:]}"
            )
        self._written = want
        for meter in sorted(set(had) - set(meters)):
            # no flow uses it any more; absent already is fine
            self._ofctl("del-meters", self._target(), f"meter={meter}")
        self._meters = dict(meters)
        if self._recorded_meters(records) != meters:
            self._set_records(**{"meters:": sorted(meters.items()) or None})

    def _set_meter(self, meter: int, kbit: int) -> None:
        spec = ovs_flows.meter_spec(meter, kbit)
        proc = self._ofctl("mod-meter", self._target(), spec)
        if proc.returncode != 0:  # not there yet
            proc = self._ofctl("add-meter", self._target(), spec)
        if proc.returncode != 0:
            raise DriverError(
                f"cannot set meter {meter} ({kbit} kbit/s) on {self.br_cloud}: "
                f"{proc.stderr.strip()[-300:]}"
            )

    @staticmethod
    def _recorded_meters(records: dict[str, str]) -> dict[int, int]:
        try:
            return {int(m): int(k) for m, k in json.loads(records.get(f"{REC}meters:", "[]"))}
        except (ValueError, TypeError):
            return {}

    def _flows_match(self, want: str) -> bool:
        with tempfile.NamedTemporaryFile("w", suffix=".flows", delete=False) as f:
            f.write(want)
        try:
            proc = self._ofctl("diff-flows", self._target(), f.name)
        finally:
            os.unlink(f.name)
        return proc.returncode == 0 and not proc.stdout.strip()

    # -- observation -------------------------------------------------------------------------

    def observe(self, prefix: str, foreign: Iterable[str] = ()) -> HostState:
        self._remember(prefix)
        state = HostState()
        cloud = self._bridge_row(self.br_cloud, "fail_mode", "external_ids")
        if cloud is None:
            self._written, self._meters = None, {}
            return state
        records = {k: v for k, v in cloud["external_ids"].items() if k.startswith(REC)}
        bridges, vxlans, atts, nofwd = self._parse(records)
        n = len(prefix)

        def ours(name: str, tag: str) -> bool:
            return name[:n] == prefix and name[n : n + 1] == tag

        in_int, in_cloud = self.patch_names(prefix)
        ifaces = self._interfaces(self.br_cloud)
        int_port = self._interfaces(self.br_int).get(in_int)
        cloud_port = ifaces.get(in_cloud)
        base_ok = (
            _one(cloud["fail_mode"]) == "secure"
            and int_port is not None
            and int_port["options"] == {"peer": in_cloud}
            and cloud_port is not None
            and cloud_port["options"] == {"peer": in_int}
        )
        flows_ok = self._flows_match(self._expected(records)[0])
        if not flows_ok:
            self._written = None
        for name, br in bridges.items():
            if ours(name, "b"):
                # A broken base or flow table shows as an impossible MTU: the plan then calls
                # ensure_bridge (in place) for wanted bridges and still removes unwanted ones.
                state.add(br if base_ok and flows_ok else dataclasses.replace(br, mtu=DRIFT))
        for name, vx in vxlans.items():
            if not ours(name, "v"):
                continue
            cur = ifaces.get(self.tunnel_port(prefix, vx))
            sound = (
                cur is not None
                and cur["type"] == self.tunnel_type
                and cur["options"] == self._tunnel_options(vx)
                and (_one(cur["ofport"]) or -1) > 0
            )
            # A missing or altered tunnel port shows as UDP port 0: re-created by the plan.
            state.add(vx if sound else dataclasses.replace(vx, port=DRIFT_PORT))
        for att in atts.values():
            if att.master in bridges and ours(att.master, "b"):
                state.add(att)
        state.no_forward = set(nofwd.get(prefix, set()))
        return state

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
        self._ensure_base(self._prefix_of(bridge.name))
        self._set_records(**{f"bridge:{bridge.name}": {"mtu": bridge.mtu}})
        self._write_flows()

    def ensure_vxlan(self, vxlan: Vxlan) -> None:
        bridges, vxlans, _, _ = self._parse(self._records())
        if vxlan.master not in bridges:
            raise DriverError(
                f"cannot put tunnel {vxlan.name} in network {vxlan.master}: no such network"
            )
        prefix = self._prefix_of(vxlan.name)
        self._ensure_base(prefix)
        port = self.tunnel_port(prefix, vxlan)
        cur = self._interfaces(self.br_cloud).get(port)
        cmds = self._port_cmds(
            self.br_cloud, port, cur, self.tunnel_type, self._tunnel_options(vxlan)
        )
        if cmds:
            self._commit(f"create tunnel port {port} for {vxlan.name}", *cmds)
        self._ofport(port)
        self._set_records(**{f"vxlan:{vxlan.name}": dataclasses.asdict(vxlan)})
        self._write_flows()
        self._collect_ports()

    def ensure_patch(self, patch: Patch) -> None:
        raise DriverError(
            f"the ovs data plane makes no patch {patch.name}: br-cloud joins {self.br_int} by its "
            "own patch ports, and a network's local side is a Neutron network id (its VLAN)"
        )

    def attach(self, attachment: Attachment) -> None:
        bridges, _, _, _ = self._parse(self._records())
        if attachment.master not in bridges:
            raise DriverError(
                f"cannot attach {attachment.interface} to {attachment.master}: no such network"
            )
        if self.interface_kind(attachment.interface) is None:
            raise DriverError(
                f"cannot attach {attachment.interface} to {attachment.master}: not a Neutron "
                "network id (the ovs data plane finds a network's VLAN by its id)"
            )
        self._set_records(**{f"attach:{attachment.interface}": {"master": attachment.master}})
        self._write_flows()

    def detach(self, interface: str) -> None:
        if f"{REC}attach:{interface}" in self._records():
            self._set_records(**{f"attach:{interface}": None})
            self._write_flows()

    def remove_link(self, name: str) -> None:
        records = self._records()
        # a bridge or tunnel record (attachments go by detach, relay filters by prefix)
        gone = {f"{k}:{name}": None for k in ("bridge", "vxlan") if f"{REC}{k}:{name}" in records}
        if f"bridge:{name}" in gone:
            # as deleting a Linux bridge frees its ports: no attachment record outlives it
            _, _, atts, _ = self._parse(records)
            gone |= {f"attach:{a.interface}": None for a in atts.values() if a.master == name}
        if gone:
            self._set_records(**gone)
            self._write_flows()
            self._collect_ports()

    def ensure_no_forward(
        self, pairs: Iterable[tuple[str, str]], prefix: str | None = None
    ) -> None:
        table = self._clamp_prefix(prefix)
        wanted = sorted(set(pairs))
        if not wanted and not self._bridge_exists(self.br_cloud):
            return
        self._ensure_base(table)
        self._set_records(**{f"nofwd:{table}": [list(p) for p in wanted] if wanted else None})
        self._write_flows()

    def remove_no_forward(self, prefix: str) -> None:
        if self._bridge_exists(self.br_cloud):
            self._set_records(**{f"nofwd:{prefix}": None})
            self._write_flows()

    def observe_no_forward(self, prefix: str) -> set[tuple[str, str]]:
        return set(self._parse(self._records())[3].get(prefix, set()))

    def cleanup(self, prefix: str) -> None:
        """br-cloud (with its tunnel ports and records) and our patch port in br-int."""
        in_int, _ = self.patch_names(prefix)
        cmds = [self.api.del_br(self.br_cloud, if_exists=True)]
        if self._bridge_exists(self.br_int):
            cmds.append(self.api.del_port(in_int, self.br_int, if_exists=True))
        self._commit(f"remove {self.br_cloud} and {in_int}", *cmds)
        self._written, self._meters = None, {}

    def close(self) -> None:
        with self._lock:
            if self._api is not None:
                with contextlib.suppress(Exception):
                    self._api.ovsdb_connection.stop()
                self._api = None

    # -- helpers -----------------------------------------------------------------------------

    def _port_cmds(
        self, bridge: str, name: str, cur: dict[str, Any] | None, kind: str, opts: dict
    ) -> list[Any]:
        """Commands that make port `name` of `bridge` an interface of type `kind` with exactly
        `opts` (none if it already is)."""
        if cur is None:
            return [self.api.add_port(bridge, name, may_exist=True, type=kind, options=opts)]
        if cur["type"] == kind and cur["options"] == opts:
            return []
        return [
            self.api.db_clear("Interface", name, "options"),
            self.api.db_set("Interface", name, ("type", kind), ("options", opts)),
        ]

    def _collect_ports(self) -> None:
        """Delete tunnel ports that no recorded Vxlan uses any more."""
        _, vxlans, _, _ = self._parse(self._records())
        needed = {self.tunnel_port(self._prefix_of(v.name), v) for v in vxlans.values()}
        ifaces = self._interfaces(self.br_cloud)
        stale = [
            name
            for name, row in ifaces.items()
            if row["type"] in TUNNEL_TYPES and name not in needed
        ]
        if stale:
            self._commit(
                "delete unused tunnel ports",
                *(self.api.del_port(n, self.br_cloud, if_exists=True) for n in stale),
            )
