"""Users of an OpenStack cloud: a Keystone token checked (and cached a while) becomes a
Principal, admin or member of a project, by the configured roles."""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

from intercloud.drivers.cloud.base import Principal
from intercloud.drivers.cloud.openstack.sdk import Sdk
from intercloud.errors import CloudError

if TYPE_CHECKING:
    from intercloud.drivers.cloud import Section

TOKEN_CACHE_SECONDS = 30.0
TOKEN_CACHE_MAX = 4096


class Tokens:
    def __init__(self, sdk: Sdk, cfg: Section) -> None:
        self.sdk = sdk
        self.cfg = cfg
        self._tokens: dict[str, tuple[float, Principal | None]] = {}

    def authenticate(self, token: str) -> Principal | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        hit = self._tokens.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        resp = self.sdk.call(
            "validating a token with Keystone",
            lambda: self.sdk.conn().identity.get(
                "/auth/tokens", headers={"X-Subject-Token": token}, raise_exc=False
            ),
        )
        if resp.status_code in (401, 403, 404):
            principal = None
        elif resp.status_code != 200:
            raise CloudError(
                f"openstack: Keystone answered HTTP {resp.status_code} to a token check"
            )
        else:
            principal = self.principal(resp.json().get("token", {}))
        if len(self._tokens) >= TOKEN_CACHE_MAX:
            self._tokens = {k: v for k, v in self._tokens.items() if v[0] > now}
            if len(self._tokens) >= TOKEN_CACHE_MAX:
                self._tokens.clear()
        self._tokens[key] = (now + TOKEN_CACHE_SECONDS, principal)
        return principal

    def principal(self, token: dict[str, Any]) -> Principal:
        roles = {r.get("name") for r in token.get("roles") or [] if isinstance(r, dict)}
        project = token.get("project") or {}
        domain = (project.get("domain") or {}).get("name")
        name = project.get("name")
        # Projects are known by name in the configured domain; a token of another domain's
        # project is not a project token here (names could collide).
        in_scope = isinstance(name, str) and domain == self.cfg.project_domain_name
        has_admin_role = self.cfg.admin_role in roles
        # Keystone's admin role is granted per project: an admin of their own project is not
        # an admin of the cloud. Only the configured admin project, or a system-scoped token
        # (`system: {"all": true}`), gives the admin API.
        system = token.get("system")
        system_scoped = isinstance(system, dict) and system.get("all") is True
        admin = has_admin_role and (system_scoped or (in_scope and name == self.cfg.admin_project))
        member = in_scope and (has_admin_role or self.cfg.member_role in roles)
        return Principal(admin=admin, project=name if member else None)
