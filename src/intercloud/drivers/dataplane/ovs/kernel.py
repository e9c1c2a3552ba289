"""The Open vSwitch data plane with kernel tunnels (the default in OpenStack mode): br-cloud is
patched to br-int as in the paper, and each expanded network leaves Open vSwitch through a veth
of its own into a Linux bridge whose tunnel ports are kernel VXLAN devices (the Linux data
plane's, unchanged).

    br-int (Neutron) ==patch== br-cloud --veth <p>q<key> / <p>p<key>-- <p>b<key> -- <p>v<vni> ...
      VM port tag=T             dl_vlan=T <-> untagged           Linux bridge   kernel VXLAN

Why: the tunnel packets are then made by the kernel and cross its IP stack, so the IPsec
driver protects them as in standalone mode (kernel ESP, or charon's kernel-libipsec here);
OVS's userspace tunnels bypass that stack. Relays, split horizon, rate limits, MSS clamping,
learning and its flushes are the Linux data plane's. This kernel has neither 802.1Q devices
nor bridge VLAN filtering, so one VLAN trunk out of OVS could not be split in the kernel:
OVS pops the network's local VLAN itself, one untagged veth per expanded network.

Mapping of the HostState contract:
- `Bridge`, `Vxlan`, MSS clamps, relay filter: the Linux data plane's (linux/driver.py).
- `Attachment(net_uuid, bridge)`: the veth pair named naming.patch(prefix, key of bridge):
  `<p>p<key>` in the Linux bridge, `<p>q<key>` a port of br-cloud, and the record
  `ic:attach:<net_uuid>` in br-cloud's external_ids. br-cloud's flows (kernel_flows.py) join
  that port to the network's local VLAN on br-int, a pure function of the records, the
  VLANs the Neutron OVS agent gave (`other_config:net_uuid`) and the port numbers.
- observe() leaves out an attachment whose veth, port or flows are not as made (and all of
  them when br-cloud or its patch is not sound), so the plan attaches it again (repairs).
- No `Patch` objects (the veths are the attachments')."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress

from intercloud.domain import naming
from intercloud.domain.hoststate import Attachment, Bridge, Observed, Patch, Vxlan
from intercloud.drivers.dataplane.base import Dataplane
from intercloud.drivers.dataplane.linux import LinuxDataplane
from intercloud.drivers.dataplane.ovs import kernel_flows
from intercloud.drivers.dataplane.ovs import records as rec
from intercloud.drivers.dataplane.ovs.driver import OvsDataplane
from intercloud.drivers.dataplane.ovs.ovsdb import ofport_of
from intercloud.drivers.nsexec import in_netns
from intercloud.errors import DriverError

_IFNAME_RE = re.compile(r"[a-z][a-z0-9]{1,14}", re.ASCII)


def _is_network_id(name: str) -> bool:
    try:
        uuid.UUID(name)
    except ValueError:
        return False
    return True


def _offload_off(ifname: str, netns: str | None) -> None:
    """The userspace datapath does not complete checksums left to offload: compute them in
    the kernel before a packet reaches it (as for every veth that feeds a netdev bridge)."""
    if not _IFNAME_RE.fullmatch(ifname):
        raise DriverError(f"not an interface name of ours: {ifname!r}")
    try:
        proc = subprocess.run(
            in_netns(["ethtool", "-K", ifname, "tx", "off"], netns),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DriverError(f"ethtool on {ifname}: {exc}") from exc
    if proc.returncode != 0:
        raise DriverError(f"cannot turn off TX offload on {ifname}: {proc.stderr.strip()[-200:]}")


class OvsKernelDataplane(Dataplane):
    """br-cloud (OVSDB `db`, management sockets in `rundir`) patched to br-int; per network a
    veth into a Linux bridge with kernel VXLAN tunnel ports (in the current namespace)."""

    clamps_mss = True
    supported_tunnels = ("vxlan",)

    def __init__(
        self,
        prefix: str,
        db: str,
        rundir: str,
        integration_bridge: str = "br-int",
        cloud_bridge: str = "br-cloud",
        *,
        timeout: float = 10.0,
        linux: LinuxDataplane | None = None,
    ) -> None:
        super().__init__(prefix)
        self.linux = linux or LinuxDataplane(prefix)
        self.ovs = OvsDataplane(
            prefix, db, rundir, integration_bridge, cloud_bridge, "vxlan", timeout=timeout
        )
        self.ovsdb = self.ovs.ovsdb
        self.table = self.ovs.table

    # -- names -------------------------------------------------------------------------------

    def veths(self, bridge: str) -> tuple[str, str]:
        """(end in the Linux bridge, end in br-cloud) of the network of our `bridge`."""
        key = bridge[len(self.prefix) + 1 :]
        return naming.patch(self.prefix, key)

    # -- flows -------------------------------------------------------------------------------

    def _expected(self, records: rec.Records) -> str:
        ifaces = self.ovsdb.interfaces(self.ovs.br_cloud)
        by_net = self.ovsdb.vlans_by_net(self.ovs.br_int)
        patch = ofport_of(ifaces.get(self.ovs.patch_names()[1]))
        joins = []
        for att in records.attachments.values():
            port = ofport_of(ifaces.get(self.veths(att.master)[1]))
            vlan = by_net.get(att.interface)
            if port is not None and vlan is not None:
                joins.append(kernel_flows.Join(att.master, vlan, port))
        return kernel_flows.text(kernel_flows.flows(joins, patch))

    def _write_flows(self) -> None:
        if self.ovsdb.bridge_exists(self.ovs.br_cloud):
            records = rec.parse(self.ovsdb.records(self.ovs.br_cloud))
            self.table.write(self._expected(records), {}, {})

    # -- observation -------------------------------------------------------------------------

    def observe(self, foreign: Iterable[str] = ()) -> Observed:
        names = list(foreign)
        seen = self.linux.observe([n for n in names if not _is_network_id(n)])
        state = seen.state
        kinds = dict(seen.kinds)
        kinds.update({n: "other" for n in names if _is_network_id(n)})
        veths = dict(state.patches)
        state.patches.clear()  # the attachments' veths (this driver makes no Patch)
        cloud = self.ovsdb.bridge_row(self.ovs.br_cloud, "fail_mode", "external_ids")
        if cloud is None:
            self.table.forget()
            return Observed(state, kinds, seen.drift)
        records = rec.parse(rec.ours(cloud["external_ids"]))
        ifaces = self.ovsdb.interfaces(self.ovs.br_cloud)
        sound = self.ovs.base_sound(cloud, ifaces) and self.table.matches(self._expected(records))
        for att in records.attachments.values():
            inside, outside = self.veths(att.master)
            veth = veths.get(inside)
            if (
                sound
                and att.master in state.bridges
                and veth is not None
                and (veth.peer, veth.master) == (outside, att.master)
                and ofport_of(ifaces.get(outside)) is not None
            ):
                state.add(att)
        return Observed(state, kinds, seen.drift)

    def interface_kind(self, name: str) -> str | None:
        """'other' for a Neutron network id (see OvsDataplane.interface_kind), else the kernel's
        kind of that interface."""
        if _is_network_id(name):
            return "other"
        return self.linux.interface_kind(name)

    # -- verbs -------------------------------------------------------------------------------

    def ensure_bridge(self, bridge: Bridge) -> None:
        self.linux.ensure_bridge(bridge)

    def ensure_vxlan(self, vxlan: Vxlan) -> None:
        self.linux.ensure_vxlan(vxlan)

    def ensure_patch(self, patch: Patch) -> None:
        raise DriverError(
            f"the ovs data plane makes no patch {patch.name}: a network's local side is a "
            "Neutron network id (its VLAN on br-int)"
        )

    def attach(self, attachment: Attachment) -> None:
        if not _is_network_id(attachment.interface):
            raise DriverError(
                f"cannot attach {attachment.interface} to {attachment.master}: not a Neutron "
                "network id (the ovs data plane finds a network's VLAN by its id)"
            )
        self.ovs.ensure_base(self.prefix)
        inside, outside = self.veths(attachment.master)
        fresh = self.linux.ensure_veth(inside, outside, attachment.master)
        if fresh and self._netdev():
            for name in (inside, outside):
                _offload_off(name, self.linux.netns)
        ifaces = self.ovsdb.interfaces(self.ovs.br_cloud)
        cur = None if fresh else ifaces.get(outside)
        cmds = self.ovsdb.port_cmds(self.ovs.br_cloud, outside, cur, "", {})
        if fresh and outside in ifaces:
            # a port row left from a veth deleted behind our back: OVS would keep the old
            # device's socket; the port goes first (its own transaction), then comes again
            self.ovsdb.commit(
                f"remove stale port {outside}",
                self.ovsdb.api.del_port(outside, self.ovs.br_cloud, if_exists=True),
            )
        if cmds:
            self.ovsdb.commit(f"add port {outside} to {self.ovs.br_cloud}", *cmds)
        self.ovsdb.ofport(outside)
        self.ovs.set_records(**{f"attach:{attachment.interface}": {"master": attachment.master}})
        self._write_flows()

    def _netdev(self) -> bool:
        row = self.ovsdb.bridge_row(self.ovs.br_cloud, "datapath_type")
        return row is not None and row["datapath_type"] == "netdev"

    def detach(self, interface: str) -> None:
        records = rec.parse(self.ovsdb.records(self.ovs.br_cloud))
        att = records.attachments.get(interface)
        if att is None:
            return
        self.ovs.set_records(**{f"attach:{interface}": None})
        self._write_flows()
        self._remove_veth(att.master)

    def _remove_veth(self, bridge: str) -> None:
        inside, outside = self.veths(bridge)
        if self.ovsdb.bridge_exists(self.ovs.br_cloud):
            self.ovsdb.commit(
                f"remove port {outside}",
                self.ovsdb.api.del_port(outside, self.ovs.br_cloud, if_exists=True),
            )
        self.linux.remove_link(inside)

    def remove_link(self, name: str) -> None:
        if name.startswith(self.prefix + "b") and self.ovsdb.bridge_exists(self.ovs.br_cloud):
            # as deleting a Linux bridge frees its ports: no attachment outlives it
            records = rec.parse(self.ovsdb.records(self.ovs.br_cloud))
            for att in list(records.attachments.values()):
                if att.master == name:
                    self.detach(att.interface)
        self.linux.remove_link(name)

    def on_change(self, callback: Callable[[], None]) -> None:
        """A Port row of this OVS made, changed or gone (the Neutron OVS agent tagging a VM's
        port with a network's local VLAN): br-cloud's flows for it are written at the next
        pass, so that pass comes now (a VM that migrates here is reachable at once)."""
        self.ovsdb.on_port_change = callback
        with suppress(DriverError):  # OVS not up yet: the first use connects, and reports
            self.ovsdb.api  # noqa: B018 - connect now: the IDL reports changes from then on

    def flush_learned(self, ports: Sequence[str]) -> None:
        """Tunnel ports, or networks' local sides (an id: the veth in its bridge)."""
        names = [p for p in ports if not _is_network_id(p)]
        if len(names) < len(ports):
            attachments = rec.parse(self.ovsdb.records(self.ovs.br_cloud)).attachments
            for port in set(ports) - set(names):
                att = attachments.get(port)
                if att is not None:
                    names.append(self.veths(att.master)[0])
        self.linux.flush_learned(names)

    # -- clamps and relay filter (the Linux data plane's) --------------------------------------

    def observe_mss_clamp(self) -> dict[str, int]:
        return self.linux.observe_mss_clamp()

    def ensure_mss_clamp(self, rules: Mapping[str, int]) -> None:
        self.linux.ensure_mss_clamp(rules)

    def remove_mss_clamp(self) -> None:
        self.linux.remove_mss_clamp()

    def observe_no_forward(self) -> set[tuple[str, str]]:
        return self.linux.observe_no_forward()

    def ensure_no_forward(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.linux.ensure_no_forward(pairs)

    def remove_no_forward(self) -> None:
        self.linux.remove_no_forward()

    def cleanup(self) -> None:
        """br-cloud, our patch port in br-int, and the Linux side (bridges, tunnels, veths)."""
        self.ovs.cleanup()
        self.linux.cleanup()  # its patches are our veths (both ends go with either)

    @contextmanager
    def applying(self) -> Iterator[None]:
        with self.linux.applying():
            yield

    def close(self) -> None:
        self.linux.close()
        self.ovs.close()
