"""The lab's record of itself (<state dir>/lab.json) as typed records: the clouds, their VMs and
peerings, saved and loaded as JSON (the same file format as ever: `dataclasses.asdict`).

    st = LabState.load(path); st.clouds["A"].ns; st.vms["A/vm1"].ip; st.save(path)
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class NetworkRecord:
    """A tenant network of a cloud: on its bridge (plain lab) or in its Neutron (OpenStack)."""

    project: str
    cidr: str
    bridge: str | None = None
    id: str | None = None  # Neutron's ids and the subnet's allocation pools (OpenStack lab)
    subnet_id: str | None = None
    project_id: str | None = None
    pools: list[list[str]] | None = None


@dataclass
class GatewayRecord:
    """One gateway of a cloud with several (lab up --ha): its namespace, own address, agent
    and charon; the cloud's address moves between them (lab/ha.py)."""

    name: str  # gw1, gw2
    ns: str
    ip: str  # its own underlay address (the cloud's is held by the active one)
    config: str
    log: str
    charon_dir: str | None = None
    pid: int | None = None
    failed: str | None = None  # how `lab gateway fail` failed it (kill, cut, db), until restored


@dataclass
class CloudRecord:
    """One cloud: its gateway namespace, addresses, agent and credentials (secrets: lab.json is
    private)."""

    name: str
    index: int
    ns: str
    ip: str  # its public (underlay) address
    local_ip: str  # its gateway's own address (differs behind NAT)
    wan_ip: str
    wan_if: str
    url: str
    admin_token: str
    dir: str
    config: str
    log: str
    nat: bool = False
    nat_ns: str | None = None
    charon_dir: str | None = None
    ca: str | None = None
    projects: dict[str, str] = field(default_factory=dict)  # project -> its token
    networks: dict[str, NetworkRecord] = field(default_factory=dict)
    pid: int | None = None
    standalone_in: str | None = None  # "B/user": a user-run agent in that VM
    openstack: dict[str, Any] | None = None  # its services' record and users (OpenStack lab)
    ovs_dir: str | None = None
    vlans: dict[str, int] = field(default_factory=dict)  # Neutron network id -> local VLAN
    # lab up --ha: its gateways (`ns` is then the site: the switch, tenant segment, database)
    gateways: dict[str, GatewayRecord] = field(default_factory=dict)
    database: str | None = None  # lab up --ha: the cloud's PostgreSQL's data directory

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CloudRecord:
        nets = {n: NetworkRecord(**v) for n, v in data.get("networks", {}).items()}
        gws = {
            g: GatewayRecord(**_known(GatewayRecord, v))
            for g, v in data.get("gateways", {}).items()
        }
        return cls(**{**_known(cls, data), "networks": nets, "gateways": gws})

    @property
    def api_host(self) -> str:
        """Where the lab reaches the cloud's agent from `ns`: its own loopback, or with several
        gateways the cloud's address (whichever gateway is active holds it)."""
        return self.ip if self.gateways else "127.0.0.1"


@dataclass
class VmRecord:
    """A "VM": a namespace whose eth0 sits on a tenant bridge or replica (or br-int)."""

    cloud: str
    name: str
    ns: str
    ip: str
    veth: str
    bridge: str
    network: str | None = None
    replica_of: str | None = None
    mac: str | None = None  # OpenStack lab: its Neutron port
    mtu: int | None = None
    port_id: str | None = None
    network_id: str | None = None

    @property
    def target(self) -> str:
        """How `Lab.exec` names it: "A/vm1"."""
        return f"{self.cloud}/{self.name}"


@dataclass
class Peering:
    clouds: list[str]
    projects: list[str]
    key: str
    psk: str


@dataclass
class LabState:
    name: str
    created_at: float
    wan_ns: str
    agent_command: list[str]
    encrypt: bool = True
    lanes: int = 1
    openstack: bool = False
    ha: bool = False
    clouds: dict[str, CloudRecord] = field(default_factory=dict)
    vms: dict[str, VmRecord] = field(default_factory=dict)
    peerings: list[Peering] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabState:
        return cls(
            **{
                **_known(cls, data),
                "clouds": {k: CloudRecord.from_json(v) for k, v in data.get("clouds", {}).items()},
                "vms": {k: VmRecord(**_known(VmRecord, v)) for k, v in data.get("vms", {}).items()},
                "peerings": [Peering(**p) for p in data.get("peerings", [])],
            }
        )

    @classmethod
    def load(cls, path: Path) -> LabState:
        return cls.from_json(json.loads(path.read_text()))

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")
        os.replace(tmp, path)


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The entries of `data` that are fields of `cls` (a record written by an older lab may
    hold others)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}
