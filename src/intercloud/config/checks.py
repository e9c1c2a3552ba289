"""Checks of a parsed configuration across its sections: every value that later reaches a
driver, a command line or a peer is refused here first, with the key it came from."""

from __future__ import annotations

import ipaddress

from intercloud.config.sections import (
    AgentSection,
    Config,
    DataplaneSection,
    NetworkDef,
    ProjectDef,
    ProxySection,
)
from intercloud.domain import ha_settings, naming, validation
from intercloud.drivers import cloud as cloud_drivers
from intercloud.drivers import dataplane as dataplane_drivers
from intercloud.drivers import ipsec as ipsec_drivers
from intercloud.drivers.ipsec.lane_layout import MAX_LANES
from intercloud.errors import Invalid


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
