"""The lab in OpenStack mode: every cloud's gateway namespace is also its controller and network
node, running a real Keystone and Neutron API (lab/openstack.py) and Open vSwitch (lab/ovs.py):
br-int carries the "VMs" as the Neutron OVS agent would plug them (access ports tagged with a
local VLAN, other_config:net_uuid), br-phy holds the underlay address (OVS's userspace tunnels
send through it). The agents run with the openstack cloud driver and the ovs data plane.

Links are unencrypted: OVS's userspace tunnels bypass the kernel's IP stack, so strongSwan's
userspace IPsec (the only IPsec this kernel has) never sees them (drivers/dataplane/ovs.py).

Keystone projects p1 and p2, users u1 (member of p1) and u2 (member of p2), and networks net1
(p1) and net2 (p2), both 10.10.0.0/24 with gateway 10.10.0.1, exist in every cloud; the lab's
tokens are Keystone tokens (admin: the admin user; p1/p2: u1/u2)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from intercloud.lab import namespaces, ovs, pki, underlay
from intercloud.lab.nsexec import LabError
from intercloud.lab.openstack import OpenStackServices
from intercloud.lab.topology import AGENT_PORT, NETWORKS, Lab, _toml, tls_settings

GATEWAY = "10.10.0.1"
USERS = {"p1": "u1", "p2": "u2"}


def _agent_toml(
    letter: str,
    cloud_dir: Path,
    creds: dict[str, str],
    inst: ovs.OvsInstance,
    tls: dict[str, str],
) -> str:
    sections: dict[str, dict[str, Any]] = {
        "agent": {
            "name": letter,
            "listen": "0.0.0.0",
            "port": AGENT_PORT,
            "database": f"sqlite:///{cloud_dir / 'state.db'}",
            "reconcile_interval": 5,
            **tls,
        },
        "dataplane": {
            "driver": "ovs",
            "prefix": "ic",
            "ovs_db": inst.db,
            "ovs_rundir": inst.rundir,
        },
        "ipsec": {"driver": "none"},
        "cloud": {"driver": "openstack", **creds},
    }
    lines = []
    for name, values in sections.items():
        lines += [f"[{name}]", *(f"{k} = {_toml(v)}" for k, v in values.items()), ""]
    return "\n".join(lines)


class OpenStackLab(Lab):
    def up(  # type: ignore[override]
        self,
        clouds: int = 2,
        *,
        start_agents: bool = True,
        timeout: float = 60.0,
        **_: Any,
    ) -> dict[str, Any]:
        st = super().up(clouds, start_agents=start_agents, encrypt=False, timeout=timeout)
        with self._edit() as s:
            s["openstack"] = True
        return st if not start_agents else self.state()

    def _build_cloud(self, letter: str, index: int, *, nat: bool, encrypt: bool) -> dict:
        if nat or encrypt:
            raise LabError("the OpenStack lab has no NAT and no encryption (see its docstring)")
        gw = self.gw_ns(letter)
        addrs = underlay.build(self.name, self.wan_ns, letter, index, gw, nat=False)
        cloud_dir = self.state_dir / letter
        cloud_dir.mkdir(parents=True, exist_ok=True)
        inst = ovs.start_ovs(gw, cloud_dir / "ovs")
        ovs.add_bridge(inst, "br-int")
        ovs.offload_off(self.wan_ns, addrs["wan_if"])
        ovs.add_underlay(inst, "eth0", f"{addrs['ip']}/24")
        namespaces.add_default_route(gw, addrs["wan_ip"])
        svc = OpenStackServices(gw, cloud_dir / "openstack")
        svc.start()
        users, networks = {}, {}
        for (net, project, cidr), (_, user) in zip(NETWORKS, USERS.items(), strict=True):
            password = secrets.token_hex(8)
            svc.create_project(project)
            svc.create_user(user, password, project)
            users[project] = {"user": user, "password": password}
            networks[net] = {
                "project": project,
                "cidr": cidr,
                **svc.create_network(project, net, cidr, GATEWAY),
            }
        tokens = {p: svc.token(u["user"], u["password"], p) for p, u in users.items()}
        config = cloud_dir / "agent.toml"
        tls = tls_settings(cloud_dir, letter, [addrs["ip"]])
        pki.write_private(
            config, _agent_toml(letter, cloud_dir, svc.agent_credentials(), inst, tls)
        )
        return {
            "name": letter,
            "index": index,
            "ns": gw,
            **addrs,
            "nat": False,
            "charon_dir": None,
            "url": f"https://{addrs['ip']}:{AGENT_PORT}",
            "ca": str(cloud_dir / "tls" / "ca.pem"),
            "admin_token": svc.admin_token(),
            "projects": tokens,
            "networks": networks,
            "openstack": {**svc.record(), "users": users},
            "ovs_dir": inst.rundir,
            "vlans": {},  # Neutron network id -> the local VLAN we (the "OVS agent") gave it
            "dir": str(cloud_dir),
            "config": str(config),
            "log": str(cloud_dir / "agent.log"),
            "pid": None,
        }

    # --- OpenStack access ---------------------------------------------------------------------

    def services(self, cloud: str) -> OpenStackServices:
        c = self.cloud(cloud)
        return OpenStackServices.from_record(c["ns"], c["openstack"])

    def refresh_tokens(self) -> None:
        """Keystone tokens last an hour: get new ones (a long demo or debugging session)."""
        for letter in self.clouds:
            svc, c = self.services(letter), self.cloud(letter)
            fresh = {
                p: svc.token(u["user"], u["password"], p)
                for p, u in c["openstack"]["users"].items()
            }
            with self._edit() as st:
                st["clouds"][letter]["projects"] = fresh
                st["clouds"][letter]["admin_token"] = svc.admin_token()

    def replica_network(self, cloud: str, origin: str, network: str, timeout: float = 30.0) -> dict:
        """The network `cloud`'s agent made in its Neutron for `origin`'s `network`."""
        svc = self.services(cloud)
        deadline = time.monotonic() + timeout
        while True:
            found = svc.sdk(
                """
result = []
for n in admin.network.networks(tags="intercloud", name=params["network"]):
    p = admin.identity.get_project(n.project_id)
    if p.name.startswith(params["origin"] + "."):
        result.append({"id": n.id, "project": p.name, "tags": sorted(n.tags)})
""",
                network=network,
                origin=origin.upper(),
            )
            if found:
                return found[0]
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
        **_: Any,
    ) -> dict[str, Any]:
        """A VM with a Neutron port (Neutron chooses MAC and address; `ip_cidr` is ignored)
        on `network` of this cloud, or on the replica this cloud hosts for `replica_of`
        ("A/net1"), plugged into br-int as the OVS agent would."""
        c = self.cloud(cloud)
        letter = c["name"]
        if (network is None) == (replica_of is None):
            raise LabError("give exactly one of network or replica_of")
        svc = self.services(letter)
        if network is not None:
            if network not in c["networks"]:
                raise LabError(f"cloud {letter} has no network {network!r}")
            net_id, project = c["networks"][network]["id"], c["networks"][network]["project"]
        else:
            parts = replica_of.split("/") if isinstance(replica_of, str) else list(replica_of or ())
            rep = self.replica_network(letter, parts[0], parts[-1], timeout)
            net_id, project = rep["id"], rep["project"]
        port = svc.create_port(net_id, project, name=name)
        with self._edit() as st:
            vlans = st["clouds"][letter]["vlans"]
            # different clouds use different local VLANs: the tunnels must translate
            tag = vlans.setdefault(net_id, 10 * c["index"] + len(vlans) + 1)
        inst = ovs.OvsInstance(c["ns"], Path(c["ovs_dir"]))
        vm_ns, veth = self.vm_ns(letter, name), f"v{letter.lower()}{name}"
        try:
            ovs.add_vm(
                inst, vm_ns, veth, tag, net_id, f"{port['ip']}/24", mac=port["mac"], mtu=port["mtu"]
            )
        except BaseException:
            namespaces.delete_namespace(vm_ns)
            raise
        vm = {
            "cloud": letter,
            "name": name,
            "ns": vm_ns,
            "ip": f"{port['ip']}/24",
            "mac": port["mac"],
            "mtu": port["mtu"],
            "port_id": port["id"],
            "network_id": net_id,
            "veth": veth,
            "bridge": f"br-int vlan {tag}",
            "network": network,
            "replica_of": replica_of if isinstance(replica_of, str) else None,
        }
        with self._edit() as st:
            st["vms"][f"{letter}/{name}"] = vm
        return vm

    def remove_vm(self, cloud: str, name: str) -> None:
        letter = self.cloud(cloud)["name"]
        vm = self.state()["vms"].get(f"{letter}/{name}")
        if vm is not None:
            c = self.cloud(letter)
            inst = ovs.OvsInstance(c["ns"], Path(c["ovs_dir"]))
            inst.vsctl("--if-exists", "del-port", "br-int", vm["veth"])
            self.services(letter).sdk(
                "admin.network.delete_port(params['id'], ignore_missing=True)", id=vm["port_id"]
            )
        super().remove_vm(cloud, name)
