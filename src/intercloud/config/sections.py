"""The configuration's sections as dataclasses, with their defaults (the file's keys are
described in intercloud/config/__init__.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from intercloud.domain import validation
from intercloud.domain.ha_settings import HaSection


@dataclass
class AgentSection:
    name: str = "local"
    listen: str = "127.0.0.1"
    port: int = 8700
    database: str = "sqlite:///intercloud.db"
    admin_token: str = ""
    reconcile_interval: float = 10.0
    federation_timeout: float = 5.0
    # replicas one peer may have here, whatever its agreement's peer_projects (service/replicas)
    max_replicas_per_peer: int = 4096
    log_level: str = "info"
    # TLS: required unless plain_http says otherwise explicitly (tokens cross the network)
    tls_cert: str = ""
    tls_key: str = ""
    plain_http: bool = False
    # "host:port" ("[::1]:9464" for IPv6) serving /metrics without a token; "": not served
    metrics_listen: str = ""


@dataclass
class DataplaneSection:
    driver: str = "linux"
    prefix: str = "ic"
    vni_min: int = 1
    vni_max: int = validation.VNI_MAX
    vxlan_port: int = 4789
    # driver = "ovs": the node's Open vSwitch (OVSDB socket, run dir holding <bridge>.mgmt)
    ovs_db: str = "unix:/var/run/openvswitch/db.sock"
    ovs_rundir: str = "/var/run/openvswitch"
    integration_bridge: str = "br-int"
    cloud_bridge: str = "br-cloud"
    tunnel_type: str = "vxlan"  # ovs: vxlan | geneve | gre
    # ovs: "kernel" = each network leaves OVS by a veth into kernel VXLAN (IPsec protects
    # it); "ovs" = OVS's own tunnel ports (Geneve, GRE; unencrypted with its userspace datapath)
    tunnels: str = "kernel"


@dataclass
class IpsecSection:
    driver: str = "strongswan"  # strongswan | fake | none (drivers/ipsec: DRIVERS)
    vici_socket: str = "/var/run/charon.vici"
    # Further charons that share the encryption (kernel-libipsec only; drivers/ipsec/lanes.py):
    # lane k's VICI socket is lanes[k - 1]; its charon's settings: `intercloud charon-config`.
    lanes: list[str] = field(default_factory=list)


@dataclass
class CloudSection:
    driver: str = "standalone"  # standalone | openstack (drivers/cloud: DRIVERS)
    # openstack: the agent's own service user (needs the admin role: it validates users'
    # tokens, reads every project's networks and makes replicas). The password is a secret.
    auth_url: str = ""
    username: str = ""
    password: str = ""
    project_name: str = "service"
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"
    region_name: str = "RegionOne"
    interface: str = "public"
    admin_role: str = "admin"  # this role on a token grants the admin API
    admin_project: str = "admin"  # ... on a token of this project (or a system-scoped one)
    member_role: str = "member"  # this role on a project-scoped token grants the user API
    cache_seconds: float = 2.0  # how long a Neutron listing serves the reconciler and API


@dataclass
class ProxySection:
    """The tenant API proxy (api/proxy.py, docs/openstack.md)."""

    rate: float = 10.0  # proxied calls per second per project, on average ...
    burst: int = 20  # ... and at once
    max_body: int = 256 * 1024  # a proxied request's body (413 beyond)
    max_answer: int = 8 * 1024 * 1024  # a proxied answer's body (502 beyond)
    timeout: float = 30.0  # seconds the peer's service may take to answer


@dataclass
class ProjectDef:
    name: str
    token: str


@dataclass
class NetworkDef:
    name: str
    project: str
    cidr: str
    interface: str


@dataclass
class Config:
    agent: AgentSection = field(default_factory=AgentSection)
    dataplane: DataplaneSection = field(default_factory=DataplaneSection)
    ipsec: IpsecSection = field(default_factory=IpsecSection)
    cloud: CloudSection = field(default_factory=CloudSection)
    proxy: ProxySection = field(default_factory=ProxySection)
    ha: HaSection = field(default_factory=HaSection)
    projects: list[ProjectDef] = field(default_factory=list)
    networks: list[NetworkDef] = field(default_factory=list)
