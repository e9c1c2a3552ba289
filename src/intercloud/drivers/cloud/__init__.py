"""Cloud drivers: where projects, tokens and expandable networks come from. `standalone` (the
agent's config file) and `openstack` (Keystone and Neutron)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from intercloud.drivers.cloud.base import Cloud
from intercloud.drivers.registry import Registry


class Section(Protocol):
    """What the cloud drivers read of their config section ([cloud]); openstack: the agent's
    own service user and how tokens map to roles."""

    driver: str
    auth_url: str
    username: str
    password: str
    project_name: str
    user_domain_name: str
    project_domain_name: str
    region_name: str
    interface: str
    admin_role: str
    admin_project: str
    member_role: str
    cache_seconds: float


class AdminToken(Protocol):
    admin_token: str


class ProjectEntry(Protocol):
    name: str
    token: str


class NetworkEntry(Protocol):
    name: str
    project: str
    cidr: str
    interface: str


class Settings(Protocol):
    """The config as the cloud drivers read it (standalone: the admin token, the projects and
    networks listed in the file)."""

    @property
    def cloud(self) -> Section: ...
    @property
    def agent(self) -> AdminToken: ...
    @property
    def projects(self) -> Sequence[ProjectEntry]: ...
    @property
    def networks(self) -> Sequence[NetworkEntry]: ...


def _standalone(cfg: Settings) -> Cloud:
    from intercloud.drivers.cloud.standalone import StandaloneCloud

    return StandaloneCloud(cfg)


def _openstack(cfg: Settings) -> Cloud:
    from intercloud.drivers.cloud.openstack import OpenStackCloud

    return OpenStackCloud(cfg.cloud)


DRIVERS: Registry[Settings, Cloud] = Registry(
    "cloud.driver", {"standalone": _standalone, "openstack": _openstack}
)


def load(cfg: Settings) -> Cloud:
    return DRIVERS.load(cfg.cloud.driver, cfg)
