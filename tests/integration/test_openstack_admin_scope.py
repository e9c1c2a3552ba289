"""Who is an agent admin in OpenStack mode, with a real Keystone validating real tokens (issue 13,
finding 13): the admin role counts on a token of the configured admin project or a
system-scoped token, never on a token of a project its holder merely administers."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from intercloud.config import CloudSection
from intercloud.drivers.cloud.openstack import OpenStackCloud
from intercloud.lab.openstack.api import OpenStackApi
from tests.integration.openstack_fixtures import openstack_cloud


class _Answer:
    def __init__(self, resp: dict[str, Any]) -> None:
        self.status_code = resp["status"]
        self._body = resp["body"]

    def json(self) -> Any:
        return self._body


class _KeystoneInNamespace:
    """The driver's `conn.identity.get`, sent to the real Keystone inside its namespace with
    the agent's own service token (as the agent's SDK connection would)."""

    def __init__(self, api: OpenStackApi, service_token: str) -> None:
        self._api, self._token = api, service_token

    def get(self, path: str, headers: dict[str, str], raise_exc: bool) -> _Answer:
        url = f"{self._api.keystone_url}/v3{path}"
        resp = self._api.call(
            "GET", url, token=self._token, headers=headers, expect=(200, 401, 403, 404)
        )
        return _Answer(resp)


def test_only_the_admin_project_or_system_scope_makes_an_agent_admin(tmp_path: Path) -> None:
    with openstack_cloud(tmp_path / "os") as (svc, api):
        api.create_project("p9")
        pw = secrets.token_hex(8)
        api.create_user("boss", pw, "p9", "admin")  # administers p9, and only p9
        creds = svc.agent_credentials()
        service_token = api.issue_token(creds["username"], creds["password"], creds["project_name"])
        scope = {"system": {"all": True}}
        ident = {
            "methods": ["password"],
            "password": {
                "user": {
                    "name": "admin",
                    "domain": {"name": "Default"},
                    "password": svc.admin_password,
                }
            },
        }
        system_token = api.call(
            "POST",
            f"{api.keystone_url}/v3/auth/tokens",
            body={"auth": {"identity": ident, "scope": scope}},
            expect=(201,),
        )["headers"]["x-subject-token"]

        conn = type("Conn", (), {})()
        conn.identity = _KeystoneInNamespace(api, service_token)
        drv = OpenStackCloud(CloudSection(driver="openstack"), connect=lambda: conn)

        boss = drv.authenticate(api.user_token("boss", pw, "p9"))
        assert (boss.admin, boss.project) == (False, "p9")  # its own project's user API only
        admin = drv.authenticate(api.admin_token())
        assert (admin.admin, admin.project) == (True, "admin")
        system = drv.authenticate(system_token)
        assert (system.admin, system.project) == (True, None)
        # the agent's own service user holds the admin role on `service`: no admin API either
        assert drv.authenticate(service_token).admin is False
        assert drv.authenticate("gAAAAAnot-a-token") is None
