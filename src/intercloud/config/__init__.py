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
interface = "tn-net1"          # a bridge (its tunnel ports join it) or an interface (enslaved)
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any

# tomli, not the standard library's tomllib (the same parser): its wheels are compiled, ~4x
# faster on a config of 10,000 networks (load with checks: 0.17 s instead of 0.33 s, quiet)
import tomli

from intercloud.config.checks import metrics_address, validate
from intercloud.config.sections import (
    AgentSection,
    CloudSection,
    Config,
    DataplaneSection,
    HaSection,
    IpsecSection,
    NetworkDef,
    ProjectDef,
    ProxySection,
)
from intercloud.errors import Invalid

__all__ = [
    "AgentSection",
    "CloudSection",
    "Config",
    "DataplaneSection",
    "HaSection",
    "IpsecSection",
    "NetworkDef",
    "ProjectDef",
    "ProxySection",
    "check_private",
    "load",
    "metrics_address",
    "parse",
    "validate",
]


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
        data = tomli.loads(p.read_text())
        check_private(p)
    except FileNotFoundError as exc:
        raise Invalid(f"config: file not found: {p}", field="config") from exc
    except tomli.TOMLDecodeError as exc:
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
