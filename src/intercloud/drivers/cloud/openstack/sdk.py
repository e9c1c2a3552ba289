"""The OpenStack driver's one openstacksdk connection (opened on first use, with only the
agent's own config) and its calls: a failing call becomes a CloudError saying what was tried."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from intercloud.errors import CloudError

if TYPE_CHECKING:
    from intercloud.drivers.cloud import Section


def _sdk_errors() -> tuple[type[BaseException], ...]:
    from keystoneauth1.exceptions import ClientException
    from openstack.exceptions import SDKException

    return (SDKException, ClientException)


def default_connection(cfg: Section) -> Any:
    """A connection as the agent's own service user (the password never leaves it)."""
    from openstack.config import get_cloud_region
    from openstack.connection import Connection

    c = cfg
    # only our config: no clouds.yaml, no OS_* variables of whoever started the agent
    region = get_cloud_region(
        auth_type="password",
        auth={
            "auth_url": c.auth_url,
            "username": c.username,
            "password": c.password,
            "project_name": c.project_name,
            "user_domain_name": c.user_domain_name,
            "project_domain_name": c.project_domain_name,
        },
        region_name=c.region_name,
        interface=c.interface,
        load_yaml_config=False,
        load_envvars=False,
    )
    return Connection(config=region)


class Sdk:
    """`connect` hands in the connection (tests: a fake speaking the SDK's calls)."""

    def __init__(self, cfg: Section, connect: Callable[[], Any] | None = None) -> None:
        self.cfg = cfg
        self._connect = connect or (lambda: default_connection(cfg))
        self._conn: Any = None
        self._domain_id: str | None = None

    def conn(self) -> Any:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one SDK call; its failure becomes a CloudError that says what was attempted
        (never with credentials: SDK messages carry URLs and status, not secrets)."""
        try:
            return fn()
        except _sdk_errors() as exc:
            raise CloudError(f"openstack: {what} failed: {exc}") from exc

    def domain(self) -> str:
        if self._domain_id is None:
            name = self.cfg.project_domain_name
            dom = self.call(
                f"finding the Keystone domain {name!r}",
                lambda: self.conn().identity.find_domain(name, ignore_missing=True),
            )
            if dom is None:
                raise CloudError(f"openstack: no Keystone domain {name!r}")
            self._domain_id = dom.id
        return self._domain_id
