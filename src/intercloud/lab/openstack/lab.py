"""The lab in OpenStack mode: every cloud's gateway namespace is also its controller and network
node, running a real Keystone and Neutron API (services.py) and Open vSwitch (ovs_instance.py):
br-int carries the "VMs" as the Neutron OVS agent would plug them (access ports tagged with a
local VLAN, other_config:net_uuid). The agents run with the openstack cloud driver and the ovs
data plane with kernel tunnels (drivers/dataplane/ovs/kernel.py): br-cloud patched to br-int,
each expanded network leaving it by a veth into a Linux bridge and kernel VXLAN, so that with
encryption (the default) each gateway's charon protects the links as in the plain lab.

Keystone projects p1 and p2, users u1 (member of p1) and u2 (member of p2), and networks net1
(p1) and net2 (p2), both 10.10.0.0/24 with gateway 10.10.0.1, exist in every cloud; the lab's
tokens are Keystone tokens (admin: the admin user; p1/p2: u1/u2)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from intercloud.config import CloudSection, Config, DataplaneSection, IpsecSection
from intercloud.errors import Conflict
from intercloud.lab import agentconf, namespaces, nsexec, ovs_instance, underlay
from intercloud.lab.build import cloud_record, lane_dir, tls_settings
from intercloud.lab.nsexec import LabError
from intercloud.lab.openstack.catalog import register_agent
from intercloud.lab.openstack.services import OpenStackServices
from intercloud.lab.records import NETWORKS
from intercloud.lab.state import CloudRecord, LabState, NetworkRecord, VmRecord
from intercloud.lab.topology import Lab

GATEWAY = "10.10.0.1"
USERS = {"p1": "u1", "p2": "u2"}


def agent_config(
    letter: str,
    cloud_dir: Path,
    creds: dict[str, str],
    inst: ovs_instance.OvsInstance,
    tls: dict[str, str],
    ipsec: IpsecSection | None = None,
) -> Config:
    """The agent of an OpenStack cloud: the ovs data plane (kernel tunnels), `ipsec` (None: no
    IPsec), the openstack cloud driver with its service user (`creds`)."""
    return Config(
        agent=agentconf.agent_section(letter, cloud_dir, tls, reconcile_interval=2),
        dataplane=DataplaneSection(
            driver="ovs", prefix="ic", ovs_db=inst.db, ovs_rundir=inst.rundir, tunnels="kernel"
        ),
        ipsec=ipsec or IpsecSection(driver="none"),
        cloud=CloudSection(
            driver="openstack",
            auth_url=creds["auth_url"],
            username=creds["username"],
            password=creds["password"],
            project_name=creds["project_name"],
            region_name=creds["region_name"],
        ),
    )


class OpenStackLab(Lab):
    def up(  # type: ignore[override]
        self,
        clouds: int = 2,
        *,
        start_agents: bool = True,
        encrypt: bool = True,
        lanes: int = 1,
        timeout: float = 60.0,
        **_: Any,
    ) -> LabState:
        super().up(clouds, start_agents=start_agents, encrypt=encrypt, lanes=lanes, timeout=timeout)
        with self._edit() as s:
            s.openstack = True
        return self.state()

    def _build_cloud(self, letter: str, index: int, *, nat: bool, encrypt: bool) -> CloudRecord:
        if nat:
            raise LabError("the OpenStack lab has no NAT")
        gw = self.gw_ns(letter)
        addrs = underlay.build(self.name, self.wan_ns, letter, index, gw, nat=False)
        cloud_dir = self.state_dir / letter
        cloud_dir.mkdir(parents=True, exist_ok=True)
        inst = ovs_instance.start_ovs(gw, cloud_dir / "ovs")
        ovs_instance.add_bridge(inst, "br-int")
        svc = OpenStackServices(gw, cloud_dir / "openstack")
        svc.start()
        users, networks = {}, {}
        for (net, project, cidr), (_, user) in zip(NETWORKS, USERS.items(), strict=True):
            password = secrets.token_hex(8)
            svc.create_project(project)
            svc.create_user(user, password, project)
            users[project] = {"user": user, "password": password}
            made = svc.create_network(project, net, cidr, GATEWAY)
            networks[net] = NetworkRecord(project=project, cidr=cidr, **made)
        tokens = {p: svc.token(u["user"], u["password"], p) for p, u in users.items()}
        c = CloudRecord(
            **cloud_record(letter, index, gw, addrs, cloud_dir),
            admin_token=svc.admin_token(),
            projects=tokens,
            networks=networks,
            openstack={**svc.record(), "users": users},
            ovs_dir=inst.rundir,
            charon_dir=str(cloud_dir / "charon") if encrypt else None,
        )
        register_agent(svc, c.url)  # the `openstack intercloud` commands find it there
        ipsec = None
        if encrypt:
            charon_dir = cloud_dir / "charon"
            lanes = [str(lane_dir(charon_dir, k) / "charon.vici") for k in range(1, self._lanes())]
            ipsec = agentconf.ipsec_section(str(charon_dir / "charon.vici"), lanes)
        tls = tls_settings(cloud_dir, letter, [addrs["ip"]])
        cfg = agent_config(letter, cloud_dir, svc.agent_credentials(), inst, tls, ipsec)
        agentconf.write(Path(c.config), cfg)
        return c

    # --- OpenStack access ---------------------------------------------------------------------

    def services(self, cloud: str) -> OpenStackServices:
        c = self.cloud(cloud)
        assert c.openstack is not None, f"cloud {c.name} runs no OpenStack services"
        return OpenStackServices.from_record(c.ns, c.openstack)

    def refresh_tokens(self) -> None:
        """Keystone tokens last an hour: get new ones (a long demo or debugging session)."""
        for letter in self.clouds:
            svc, c = self.services(letter), self.cloud(letter)
            assert c.openstack is not None
            fresh = {
                p: svc.token(u["user"], u["password"], p) for p, u in c.openstack["users"].items()
            }
            with self._edit() as st:
                st.clouds[letter].projects = fresh
                st.clouds[letter].admin_token = svc.admin_token()

    def replica_network(
        self, cloud: str, origin: str, network: str, timeout: float = 30.0
    ) -> dict[str, Any]:
        """The network `cloud`'s agent made in its Neutron for `origin`'s `network`."""
        deadline = time.monotonic() + timeout
        with self.services(cloud).api() as api:
            while True:
                token = api.admin_token()
                for n in api.list(token, "networks", tags="intercloud", name=network):
                    project = api.get(token, "projects", n["project_id"])["name"]
                    if project.startswith(origin.upper() + "."):
                        return {"id": n["id"], "project": project, "tags": sorted(n["tags"])}
                if time.monotonic() > deadline:
                    raise LabError(f"cloud {cloud} has no replica network of {origin}/{network}")
                time.sleep(0.5)

    # --- VMs --------------------------------------------------------------------------------------

    def add_vm(  # type: ignore[override]
        self,
        cloud: str,
        name: str,
        ip_cidr: str | None = None,
        *,
        network: str | None = None,
        replica_of: str | Sequence[str] | None = None,
        timeout: float = 30.0,
        port: dict[str, Any] | None = None,
        up: bool = True,
        **_: Any,
    ) -> VmRecord:
        """A VM with a Neutron port (Neutron chooses MAC and address; `ip_cidr` is ignored)
        on `network` of this cloud, or on the replica this cloud hosts for `replica_of`
        ("A/net1"), plugged into br-int as the OVS agent would. `port`: an existing port
        (id, mac, ip, mtu) to plug instead (a VM that moves here); `up=False`: its eth0 stays
        down (a migrating VM not yet switched over: vm_up())."""
        c = self.cloud(cloud)
        letter = c.name
        if (network is None) == (replica_of is None):
            raise LabError("give exactly one of network or replica_of")
        net_id, project = self._vm_network(c, network, replica_of, timeout)
        if port is None:
            port = self.services(letter).create_port(net_id, project, name=name)
        where = replica_of if isinstance(replica_of, str) else None
        return self.plug(letter, name, port, net_id, up=up, network=network, replica_of=where)

    def plug(
        self,
        cloud: str,
        name: str,
        port: dict[str, Any],
        net_id: str,
        *,
        up: bool = True,
        network: str | None = None,
        replica_of: str | None = None,
    ) -> VmRecord:
        """VM `name` on Neutron `port` (id, mac, ip, mtu) of network `net_id`, plugged into
        br-int as the OVS agent would (the network's local VLAN of this cloud); `up=False`: its
        eth0 stays down. Recorded with `network` / `replica_of` (how the lab names where)."""
        c = self.cloud(cloud)
        letter = c.name
        with self._edit() as st:
            vlans = st.clouds[letter].vlans
            # different clouds use different local VLANs: the tunnels must translate
            tag = vlans.setdefault(net_id, 10 * c.index + len(vlans) + 1)
        assert c.ovs_dir is not None
        inst = ovs_instance.OvsInstance(c.ns, Path(c.ovs_dir))
        vm_ns, veth = self.vm_ns(letter, name), f"v{letter.lower()}{name}"
        try:
            ovs_instance.add_vm(
                inst, vm_ns, veth, tag, net_id, f"{port['ip']}/24", mac=port["mac"], mtu=port["mtu"]
            )
            if not up:
                namespaces.ip("link", "set", "eth0", "down", ns=vm_ns)
        except BaseException:
            namespaces.delete_namespace(vm_ns)
            raise
        vm = VmRecord(
            cloud=letter,
            name=name,
            ns=vm_ns,
            ip=f"{port['ip']}/24",
            mac=port["mac"],
            mtu=port["mtu"],
            port_id=port["id"],
            network_id=net_id,
            veth=veth,
            bridge=f"br-int vlan {tag}",
            network=network,
            replica_of=replica_of,
        )
        with self._edit() as st:
            st.vms[f"{letter}/{name}"] = vm
        return vm

    def _vm_network(
        self,
        c: CloudRecord,
        network: str | None,
        replica_of: str | Sequence[str] | None,
        timeout: float,
    ) -> tuple[str, str]:
        """(Neutron network id, project name) a VM's port goes on."""
        if network is not None:
            if network not in c.networks:
                raise LabError(f"cloud {c.name} has no network {network!r}")
            net = c.networks[network]
            assert net.id is not None
            return net.id, net.project
        parts = replica_of.split("/") if isinstance(replica_of, str) else list(replica_of or ())
        rep = self.replica_network(c.name, parts[0], parts[-1], timeout)
        return rep["id"], rep["project"]

    def remove_vm(self, cloud: str, name: str) -> None:
        letter = self.cloud(cloud).name
        vm = self.state().vms.get(f"{letter}/{name}")
        if vm is not None:
            c = self.cloud(letter)
            assert c.ovs_dir is not None and vm.port_id is not None
            inst = ovs_instance.OvsInstance(c.ns, Path(c.ovs_dir))
            inst.vsctl("--if-exists", "del-port", "br-int", vm.veth)
            self.services(letter).delete_port(vm.port_id)
        super().remove_vm(cloud, name)

    def move_vm(self, src: str, dst: str, name: str, timeout: float = 30.0) -> float:
        """Live-migrate VM `name` from cloud `src` to `dst` as an orchestrator would: `dst`'s
        agent receives its port (POST /v1/moves: the placeholder gives way to a port with the
        same MAC and IP), the VM is plugged there with eth0 down; the switch-over: eth0 down
        at the source, up at the destination with a gratuitous ARP; once the origin lists the
        move (and a member source has heard of it), the source's port and namespace go.
        Returns when the switch-over began (time.time())."""
        a, b = self.cloud(src).name, self.cloud(dst).name
        asked = time.time()
        vm = self.state().vms[f"{a}/{name}"]
        origin, net = (a, vm.network) if vm.network else tuple(str(vm.replica_of).split("/"))
        where: dict[str, Any] = (
            {"network": net} if b == origin else {"replica_of": f"{origin}/{net}"}
        )
        net_id, _ = self._vm_network(
            self.cloud(b), where.get("network"), where.get("replica_of"), timeout
        )
        ip = vm.ip.split("/")[0]
        got = self._receive(b, {"network": net_id, "mac": vm.mac, "ip": ip}, timeout)
        port = {"id": got["port_id"], "mac": got["mac"], "ip": got["ip"], "mtu": vm.mtu}
        self.add_vm(b, name, port=port, up=False, timeout=timeout, **where)
        # as Nova waits for the port to be plugged before the switch-over: the destination's
        # agent has joined br-cloud to the network's VLAN on br-int (a pass after the plug)
        self._wait_pass_after(b, time.time(), timeout)
        began = time.time()
        namespaces.ip("link", "set", "eth0", "down", ns=vm.ns)
        new_ns = self.vm_ns(b, name)
        namespaces.ip("link", "set", "eth0", "up", ns=new_ns)
        self._wait_link_up(b, self.state().vms[f"{b}/{name}"].veth)
        nsexec.run_program(new_ns, "intercloud.lab.programs.garp", "eth0", str(vm.mac), ip)
        self._wait_move_seen(origin, net, str(vm.mac), b, asked, timeout)
        if a != origin:
            # the source learns of the move from the origin, then takes the address out of its
            # pool at its next pass (drivers/cloud/openstack/held.py): only then may it go
            told = self._wait_pass_after(origin, time.time() + CloudSection.cache_seconds, timeout)
            self._wait_pass_after(a, told, timeout)
        self.remove_vm(a, name)
        self._wait_removal_seen(a, origin, time.time(), timeout)
        return began

    def _wait_removal_seen(self, src: str, origin: str, removed: float, timeout: float) -> None:
        """Until the origin has seen the old port go: a pass of the source that began after the
        removal and its Neutron cache window, then one of the origin after that. The origin
        finds moves by where each MAC is from one pass to the next (reconciler/moves.py): a VM
        moved on again before that would look as if it had never left (docs/openstack.md)."""
        since = removed + CloudSection.cache_seconds
        for cloud in dict.fromkeys((src, origin)):
            since = self._wait_pass_after(cloud, since, timeout)

    def _wait_pass_after(self, cloud: str, since: float, timeout: float) -> float:
        """Until `cloud`'s agent ends a pass that began after `since`; when it ended."""
        deadline = time.monotonic() + timeout
        passes = None
        while time.monotonic() < deadline:
            stats = self.api(cloud, "GET", "/v1/status")["reconciler"]
            ended = stats["last_pass_at"]
            at = datetime.fromisoformat(ended).timestamp() if ended else 0.0
            if passes is None and at > since:
                passes = stats["passes"]  # this one may have begun before `since`
            elif passes is not None and stats["passes"] > passes:
                return at
            time.sleep(0.1)
        raise LabError(f"{cloud}'s agent ran no pass within {timeout:.0f}s")

    def _wait_move_seen(
        self, origin: str, net: str, mac: str, dst: str, since: float, timeout: float
    ) -> None:
        """Until the origin lists the move (it accepted the destination's new port): only then
        does an orchestrator delete the old port (docs/openstack.md, Live migration)."""
        project = self.cloud(origin).networks[net].project
        deadline = time.monotonic() + timeout
        while True:
            for exp in self.api(origin, "GET", "/v1/expansions", token=project):
                moves = self.api(origin, "GET", f"/v1/expansions/{exp['id']}/moves", token=project)
                if any(
                    m["mac"] == mac and dst in m["to"].split(",") and m["at"] >= since
                    for m in moves
                ):
                    return
            if time.monotonic() > deadline:
                raise LabError(f"{origin} did not see {mac} arrive in {dst} within {timeout:.0f}s")
            time.sleep(0.2)

    def _wait_link_up(self, cloud: str, port: str, timeout: float = 5.0) -> None:
        """Until OVS sees br-int's `port` up (it drops what arrives before)."""
        c = self.cloud(cloud)
        assert c.ovs_dir is not None
        inst = ovs_instance.OvsInstance(c.ns, Path(c.ovs_dir))
        deadline = time.monotonic() + timeout
        while inst.vsctl("get", "interface", port, "link_state").strip() != "up":
            if time.monotonic() > deadline:
                raise LabError(f"OVS does not see {port} up after {timeout:.0f}s")
            time.sleep(0.02)

    def _receive(self, cloud: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        """POST /v1/moves, again while the destination has no placeholder for the VM yet (it
        left there less than a pass ago: "nothing to move"), as an orchestrator would."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.api(cloud, "POST", "/v1/moves", body)
            except Conflict as exc:
                if "nothing to move" not in exc.message or time.monotonic() > deadline:
                    raise
            time.sleep(0.5)
