"""Agent configuration: a TOML file, overridden by INTERCLOUD_<SECTION>_<KEY> variables.

[agent]
name = "A"                     # this cloud's name, as its peers know it
listen = "0.0.0.0"
port = 8700
database = "sqlite:////var/lib/intercloud/agent.db"   # or postgresql+psycopg://...
admin_token = "..."
reconcile_interval = 10.0      # seconds between periodic passes
tls_cert = "/etc/intercloud/agent.crt"   # PEM certificate (chain); reloaded on SIGHUP
tls_key = "/etc/intercloud/agent.key"    # its private key (mode 0600); empty: in tls_cert
# plain_http = true            # serve plain HTTP instead (tokens in clear: tests only)
# metrics_listen = "127.0.0.1:9464"   # /metrics also here, plain HTTP, no token (a local
                                      # scraper); it is always on the API for the admin token

[dataplane]
driver = "linux"               # linux | ovs | fake
# tunnels = "kernel"           # ovs: kernel VXLAN behind br-cloud (encrypted) | ovs
prefix = "ic"                  # every host object the agent makes starts with this
vni_min = 1
vni_max = 16777215

[ipsec]
driver = "strongswan"          # strongswan | fake | none
vici_socket = "/var/run/charon.vici"
# lanes = ["/var/run/charon-lane1.vici"]   # further charons sharing the encryption (libipsec)

[cloud]
driver = "standalone"          # standalone | openstack
# openstack: the agent's service user (admin role); users then present Keystone tokens
# auth_url = "http://controller:5000/v3"
# username = "intercloud"
# password = "..."
# project_name = "service"

[proxy]                        # tenants' OpenStack calls into peers (docs/openstack.md)
rate = 10.0                    # per project: calls per second, `burst` at once

# [ha]                         # several gateways per cloud, one active (docs/ha.md)
# enabled = true
# gateway = "gw1"              # this gateway's name
# address = "198.18.0.1/24"    # the cloud's underlay address, held by the active gateway
# interface = "eth1"           # the underlay interface that address is reached through

[[projects]]                   # standalone mode: the local projects and their tokens
name = "p1"
token = "..."

[[networks]]                   # standalone mode: the networks projects may expand
name = "net1"
project = "p1"
cidr = "10.10.0.0/24"
interface = "tn-net1"          # a bridge (joined by a veth pair) or an interface (enslaved)
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from intercloud.domain import ha_settings, naming, validation
from intercloud.domain.ha_settings import HaSection
from intercloud.drivers import cloud as cloud_drivers
from intercloud.drivers import dataplane as dataplane_drivers
from intercloud.drivers import ipsec as ipsec_drivers
from intercloud.drivers.ipsec.lane_layout import MAX_LANES
from intercloud.errors import Invalid


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


def _coerce(section: str, key: str, raw: Any, default: Any) -> Any:
    kind = type(default)
    try:
        if kind is bool:
            return raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes")
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is list:  # a TOML list, or a comma-separated string (environment)
            items = raw.split(",") if isinstance(raw, str) else raw
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise TypeError("not a list of strings")
            return [i.strip() for i in items if i.strip()]
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise Invalid(
            f"config {section}.{key}: expected {kind.__name__}, got {raw!r}",
            field=f"{section}.{key}",
        ) from exc


def _section(cls: type, section: str, data: dict[str, Any], env: dict[str, str]) -> Any:
    obj = cls()
    known = {f.name for f in fields(cls)}
    for key in data:
        if key not in known:
            raise Invalid(
                f"config {section}.{key}: unknown key (valid: {', '.join(sorted(known))})",
                field=f"{section}.{key}",
            )
    for f in fields(cls):
        value = data.get(f.name, getattr(obj, f.name))
        env_key = f"INTERCLOUD_{section.upper()}_{f.name.upper()}"
        if env_key in env:
            value = env[env_key]
        setattr(obj, f.name, _coerce(section, f.name, value, getattr(obj, f.name)))
    return obj


def _items(cls: type, section: str, data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise Invalid(f"config {section}: must be a list of tables ([[{section}]])", field=section)
    out = []
    names = [f.name for f in fields(cls)]
    for i, item in enumerate(data):
        missing = [n for n in names if n not in item]
        extra = [k for k in item if k not in names]
        if missing or extra:
            what = f"missing {', '.join(missing)}" if missing else f"unknown {', '.join(extra)}"
            raise Invalid(f"config {section}[{i}]: {what}", field=section)
        out.append(cls(**{n: str(item[n]) for n in names}))
    return out


def parse(data: dict[str, Any], env: dict[str, str] | None = None) -> Config:
    env = dict(os.environ) if env is None else env
    for key in data:
        if key not in {f.name for f in fields(Config)}:
            raise Invalid(f"config: unknown section [{key}]", field=key)
    cfg = Config(
        agent=_section(AgentSection, "agent", data.get("agent", {}), env),
        dataplane=_section(DataplaneSection, "dataplane", data.get("dataplane", {}), env),
        ipsec=_section(IpsecSection, "ipsec", data.get("ipsec", {}), env),
        cloud=_section(CloudSection, "cloud", data.get("cloud", {}), env),
        proxy=_section(ProxySection, "proxy", data.get("proxy", {}), env),
        ha=_section(HaSection, "ha", data.get("ha", {}), env),
        projects=_items(ProjectDef, "projects", data.get("projects", [])),
        networks=_items(NetworkDef, "networks", data.get("networks", [])),
    )
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    validation.name(cfg.agent.name, "agent.name")
    _validate_tls(cfg.agent)
    if cfg.agent.metrics_listen:
        metrics_address(cfg.agent.metrics_listen)
    naming.check_prefix(cfg.dataplane.prefix)
    _validate_drivers(cfg)
    # with OpenStack, admins are Keystone users with the admin role: no token of our own
    if cfg.cloud.driver != "openstack" and len(cfg.agent.admin_token) < 16:
        raise Invalid(
            "config agent.admin_token: must be at least 16 characters", field="agent.admin_token"
        )
    if cfg.cloud.driver == "openstack":
        for key in ("auth_url", "username", "password"):
            if not getattr(cfg.cloud, key):
                raise Invalid(
                    f"config cloud.{key}: required with the openstack cloud driver",
                    field=f"cloud.{key}",
                )
    _validate_proxy(cfg.proxy)
    ha_settings.validate(cfg.ha, cfg.agent.database)
    validation.vni(cfg.dataplane.vni_min, "dataplane.vni_min")
    validation.vni(cfg.dataplane.vni_max, "dataplane.vni_max")
    if cfg.dataplane.vni_min > cfg.dataplane.vni_max:
        raise Invalid(
            "config dataplane.vni_min: must not exceed vni_max", field="dataplane.vni_min"
        )
    _validate_networks(cfg.networks, _validate_projects(cfg.projects, cfg.agent.admin_token))


def _validate_proxy(p: ProxySection) -> None:
    for key, ok in (
        ("rate", 0 < p.rate <= 1e4),
        ("burst", 1 <= p.burst <= 1e5),
        ("max_body", 0 <= p.max_body <= 512 * 1024),  # the envelope fits the 1 MB body limit
        ("max_answer", 1024 <= p.max_answer <= 64 * 1024 * 1024),
        ("timeout", 0 < p.timeout <= 600),
    ):
        if not ok:
            raise Invalid(f"config proxy.{key}: out of range", field=f"proxy.{key}")


def _validate_drivers(cfg: Config) -> None:
    # the drivers' own registries know their names (and list them when one is unknown)
    dataplane_drivers.DRIVERS.check(cfg.dataplane.driver)
    ipsec_drivers.DRIVERS.check(cfg.ipsec.driver)
    cloud_drivers.DRIVERS.check(cfg.cloud.driver)
    _validate_ovs(cfg.dataplane)
    lanes = cfg.ipsec.lanes
    if lanes and cfg.ipsec.driver != "strongswan":
        raise Invalid("config ipsec.lanes: needs the strongswan driver", field="ipsec.lanes")
    if len(lanes) >= MAX_LANES or len(set(lanes) | {cfg.ipsec.vici_socket}) != len(lanes) + 1:
        raise Invalid(
            f"config ipsec.lanes: at most {MAX_LANES - 1} further VICI sockets, all different "
            "from each other and from vici_socket",
            field="ipsec.lanes",
        )


def _validate_ovs(dp: DataplaneSection) -> None:
    if dp.tunnels not in ("kernel", "ovs"):
        raise Invalid(
            f'config dataplane.tunnels: must be "kernel" or "ovs" (got {dp.tunnels!r})',
            field="dataplane.tunnels",
        )
    if dp.driver == "ovs" and dp.tunnels == "kernel" and dp.tunnel_type != "vxlan":
        raise Invalid(
            "config dataplane.tunnel_type: kernel tunnels are VXLAN; Geneve and GRE need "
            'tunnels = "ovs"',
            field="dataplane.tunnel_type",
        )


def _validate_projects(items: list[ProjectDef], admin_token: str) -> set[str]:
    """The standalone projects' names (checked: names, tokens long enough and unique)."""
    projects = set()
    tokens = set()
    for p in items:
        validation.name(p.name, "projects.name")
        if len(p.token) < 16:
            raise Invalid(
                f"config projects[{p.name}].token: must be at least 16 characters",
                field="projects.token",
            )
        if p.name in projects or p.token in tokens or p.token == admin_token:
            raise Invalid(f"config projects[{p.name}]: duplicate name or token", field="projects")
        projects.add(p.name)
        tokens.add(p.token)
    return projects


def _validate_networks(items: list[NetworkDef], projects: set[str]) -> None:
    seen = set()
    for n in items:
        validation.name(n.name, "networks.name")
        validation.cidr(n.cidr, f"networks[{n.name}].cidr")
        if n.project not in projects:
            raise Invalid(
                f"config networks[{n.name}].project: unknown project {n.project!r}",
                field="networks.project",
            )
        if (n.project, n.name) in seen:
            raise Invalid(
                f"config networks[{n.name}]: duplicate in project {n.project}",
                field="networks.name",
            )
        seen.add((n.project, n.name))


def _validate_tls(agent: AgentSection) -> None:
    if agent.plain_http and (agent.tls_cert or agent.tls_key):
        raise Invalid(
            "config agent.plain_http: conflicts with agent.tls_cert/tls_key (choose one)",
            field="agent.plain_http",
        )
    if not agent.plain_http and not agent.tls_cert:
        raise Invalid(
            "config agent.tls_cert: required (a PEM certificate file, its key in agent.tls_key); "
            "or set agent.plain_http = true to serve plain HTTP",
            field="agent.tls_cert",
        )


def metrics_address(value: str) -> tuple[str, int]:
    """(address, port) of `agent.metrics_listen`: an IP address and a port, "[v6]:port"."""
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]") if host.startswith("[") else host
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        number = 0
    if not sep or not 0 < number < 65536:
        raise Invalid(
            f"config agent.metrics_listen: expected address:port (e.g. 127.0.0.1:9464 or "
            f"[::1]:9464), got {value!r}",
            field="agent.metrics_listen",
        )
    return host, number


def check_private(path: Path, what: str = "config") -> None:
    """Refuse a file of secrets (tokens, the Keystone password, a TLS key) that the group or
    others can read or write."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        label = "config" if what == "config" else f"config {what}"
        raise Invalid(
            f"{label}: {path} is accessible by group/other (mode {mode:04o}) and holds secrets; "
            f"make it 0600 (chmod 600 {path})",
            field=what,
        )


def load(path: str | Path, env: dict[str, str] | None = None) -> Config:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
        check_private(p)
    except FileNotFoundError as exc:
        raise Invalid(f"config: file not found: {p}", field="config") from exc
    except tomllib.TOMLDecodeError as exc:
        raise Invalid(f"config: {p} is not valid TOML ({exc})", field="config") from exc
    cfg = parse(data, env)
    key = cfg.agent.tls_key or cfg.agent.tls_cert  # the key may sit in the certificate's file
    field_name = "agent.tls_key" if cfg.agent.tls_key else "agent.tls_cert"
    try:
        if key and (cfg.agent.tls_key or "PRIVATE KEY" in Path(key).read_text(errors="replace")):
            check_private(Path(key), field_name)
    except FileNotFoundError:
        raise Invalid(f"config {field_name}: file not found: {key}", field=field_name) from None
    return cfg
