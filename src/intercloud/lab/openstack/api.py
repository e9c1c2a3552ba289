"""Plain REST calls to a simulated cloud's Keystone and Neutron, made from inside its namespace
(the services listen on that namespace's loopback; the caller lives in the host's namespace).
Every answer is a plain dict. No openstacksdk: an OpenStackApi keeps one small stdlib process in
the namespace that makes its requests (close() it, or use it as a context manager, before
checking that the namespace is empty).

    from intercloud.lab.openstack.api import OpenStackApi
    from intercloud.lab.openstack.services import OpenStackServices

    with OpenStackServices("k1a2b3-ctl", Path("/tmp/os")) as svc:
        api = OpenStackApi.for_services(svc)
        api.create_project("p1")
        api.create_user("u1", "pw1", "p1", "member")
        tok = api.user_token("u1", "pw1", "p1")
        net = api.create_network(tok, "n1", "10.1.0.0/24", "10.1.0.1")
        port = api.create_port(tok, net["id"])          # {"id", "mac", "ip", ...}
        api.list(tok, "networks", name="n1")            # [{...}]

`call()` is the general tool: any method, any headers (X-Auth-Token, X-Subject-Token...),
and it returns the response headers too (Keystone hands out tokens in `X-Subject-Token`).
"""

from __future__ import annotations

import builtins
import contextlib
import json
import threading
from typing import Any
from urllib.parse import urlencode

from intercloud.lab.nsexec import LabError
from intercloud.lab.nshttp import Relay


class OpenStackApiError(LabError):
    """A Keystone or Neutron call answered with an unexpected status (or not at all)."""

    code = "openstack_api_error"

    def __init__(self, message: str, status: int = 0, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


# Neutron resources by their collection name -> the singular key of their bodies.
_NEUTRON = {"networks": "network", "subnets": "subnet", "ports": "port", "routers": "router"}
# Keystone collections.
_KEYSTONE = {"projects": "project", "users": "user", "roles": "role", "domains": "domain"}
_KEYSTONE |= {"services": "service", "endpoints": "endpoint", "regions": "region"}


class OpenStackApi:
    """Calls to one simulated cloud's Keystone (v3) and Neutron (v2.0) from inside `ns`."""

    def __init__(
        self,
        ns: str,
        admin_password: str,
        *,
        keystone_port: int = 5000,
        neutron_port: int = 9696,
        host: str = "127.0.0.1",
        domain: str = "Default",
    ) -> None:
        self.ns = ns
        self.admin_password = admin_password
        self.keystone_url = f"http://{host}:{keystone_port}"
        self.neutron_url = f"http://{host}:{neutron_port}"
        self.domain = domain
        self._admin_token: str | None = None
        self._ids: dict[tuple[str, str], str] = {}  # (collection, name) -> id; never change
        self._relay: Relay | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        """End the request process this object keeps in the namespace (made again if needed)."""
        with self._lock:
            if self._relay is not None:
                self._relay.close()
                self._relay = None

    def __enter__(self) -> OpenStackApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    @classmethod
    def for_services(cls, svc: Any) -> OpenStackApi:
        """For a started (or recorded) `OpenStackServices`."""
        return cls(
            svc.ns,
            svc.admin_password,
            keystone_port=svc.keystone_port,
            neutron_port=svc.neutron_port,
        )

    # -- raw ----------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        url: str,
        *,
        token: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        expect: tuple[int, ...] = (200, 201, 202, 204),
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """One request with `token` as X-Auth-Token; raises OpenStackApiError unless the status is
        in `expect`. Returns the whole response dict (status, headers, body)."""
        hdrs = dict(headers or {})
        if token:
            hdrs["X-Auth-Token"] = token
        with self._lock:
            if self._relay is None or not self._relay.alive():
                self._relay = Relay(self.ns)
            resp = self._relay.request(method, url, hdrs, body, timeout)
        if resp["status"] not in expect:
            what = resp["error"] or _short(resp["body"])
            raise OpenStackApiError(
                f"{method.upper()} {url}: {resp['status']} {what}", resp["status"], resp["body"]
            )
        return resp

    def keystone(self, method: str, path: str, **kw: Any) -> Any:
        """A Keystone call as the admin unless `token=` is given; returns the JSON body."""
        kw.setdefault("token", self.admin_token())
        return self.call(method, f"{self.keystone_url}/v3{path}", **kw)["body"]

    def neutron(self, method: str, path: str, token: str, **kw: Any) -> Any:
        """A Neutron call with `token`; returns the JSON body."""
        return self.call(method, f"{self.neutron_url}/v2.0{path}", token=token, **kw)["body"]

    # -- Keystone -----------------------------------------------------------------------------

    def issue_token(self, user: str, password: str, project: str | None = None) -> str:
        """A token for `user` (scoped to `project` when given; names in `self.domain`)."""
        ident = {
            "methods": ["password"],
            "password": {
                "user": {"name": user, "domain": {"name": self.domain}, "password": password}
            },
        }
        auth: dict[str, Any] = {"identity": ident}
        if project:
            auth["scope"] = {"project": {"name": project, "domain": {"name": self.domain}}}
        resp = self.call(
            "POST", f"{self.keystone_url}/v3/auth/tokens", body={"auth": auth}, expect=(201,)
        )
        return resp["headers"]["x-subject-token"]

    def admin_token(self) -> str:
        """The bootstrap admin's token, scoped to the `admin` project (cached)."""
        if self._admin_token is None:
            self._admin_token = self.issue_token("admin", self.admin_password, "admin")
        return self._admin_token

    def user_token(self, user: str, password: str, project: str) -> str:
        return self.issue_token(user, password, project)

    def validate_token(self, subject: str, token: str | None = None) -> dict[str, Any]:
        """Keystone's view of `subject` (GET /v3/auth/tokens), asked with `token` (the admin's
        by default; a service user's works too). Raises OpenStackApiError (404) if invalid."""
        resp = self.call(
            "GET",
            f"{self.keystone_url}/v3/auth/tokens",
            token=token or self.admin_token(),
            headers={"X-Subject-Token": subject},
            expect=(200,),
        )
        return resp["body"]["token"]

    def find(self, collection: str, name: str) -> dict[str, Any] | None:
        """The Keystone object of `collection` (projects, users, roles...) named `name`."""
        found = self.keystone("GET", f"/{collection}?{urlencode({'name': name})}")[collection]
        return found[0] if found else None

    def _fixed_id(self, collection: str, name: str) -> str:
        """The id of a domain or role (cached: these are not removed here)."""
        key = (collection, name)
        if key not in self._ids:
            found = self.find(collection, name)
            if found is None:
                raise OpenStackApiError(f"no {collection[:-1]} {name}")
            self._ids[key] = found["id"]
        return self._ids[key]

    def _domain_id(self) -> str:
        return self._fixed_id("domains", self.domain)

    def create_project(self, name: str) -> dict[str, Any]:
        """The project `name` (made if missing)."""
        found = self.find("projects", name)
        if found:
            return found
        body = {"project": {"name": name, "domain_id": self._domain_id()}}
        return self.keystone("POST", "/projects", body=body)["project"]

    def create_user(
        self, name: str, password: str, project: str, role: str = "member"
    ) -> dict[str, Any]:
        """User `name` (made if missing) with `role` on `project` (a name)."""
        proj = self.find("projects", project)
        if proj is None:
            raise OpenStackApiError(f"no project {project}")
        user = self.find("users", name)
        if user is None:
            body = {
                "user": {
                    "name": name,
                    "password": password,
                    "domain_id": self._domain_id(),
                    "default_project_id": proj["id"],
                }
            }
            user = self.keystone("POST", "/users", body=body)["user"]
        self.assign_role(user["id"], proj["id"], role)
        return user

    def assign_role(self, user_id: str, project_id: str, role: str) -> None:
        role_id = self._fixed_id("roles", role)
        self.keystone("PUT", f"/projects/{project_id}/users/{user_id}/roles/{role_id}")

    # -- Neutron ------------------------------------------------------------------------------

    def create_network(
        self,
        token: str,
        name: str,
        cidr: str,
        gateway: str | None = None,
        *,
        project_id: str | None = None,
        pools: builtins.list[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        """A network and one IPv4 subnet, made with `token` (in its project unless an admin
        names `project_id`). Returns the network with `subnet` (the subnet dict) added."""
        net_body: dict[str, Any] = {"name": name}
        if project_id:
            net_body["project_id"] = project_id
        net = self.neutron("POST", "/networks", token, body={"network": net_body})["network"]
        sub_body: dict[str, Any] = {
            "network_id": net["id"],
            "name": f"{name}-subnet",
            "ip_version": 4,
            "cidr": cidr,
            "gateway_ip": gateway,
        }
        if project_id:
            sub_body["project_id"] = project_id
        if pools:
            sub_body["allocation_pools"] = [{"start": s, "end": e} for s, e in pools]
        net["subnet"] = self.neutron("POST", "/subnets", token, body={"subnet": sub_body})["subnet"]
        net["subnet_id"] = net["subnet"]["id"]
        return net

    def create_port(
        self,
        token: str,
        network_id: str,
        *,
        name: str = "",
        mac: str | None = None,
        ip: str | None = None,
        device_owner: str = "compute:nova",
        **extra: Any,
    ) -> dict[str, Any]:
        """A port (Neutron picks MAC and address unless given). Returns the port dict with
        `mac` and `ip` (its first fixed IP) added."""
        body: dict[str, Any] = {
            "network_id": network_id,
            "name": name,
            "device_owner": device_owner,
            **extra,
        }
        if mac:
            body["mac_address"] = mac
        if ip:
            body["fixed_ips"] = [{"ip_address": ip}]
        port = self.neutron("POST", "/ports", token, body={"port": body})["port"]
        port["mac"] = port["mac_address"]
        port["ip"] = port["fixed_ips"][0]["ip_address"] if port["fixed_ips"] else None
        return port

    def list(self, token: str, collection: str, **filters: Any) -> builtins.list[dict[str, Any]]:
        """Objects of a Neutron (networks, subnets, ports, routers) or Keystone (projects,
        users, roles, ...) collection that `token` may see, filtered by query parameters."""
        query = f"?{urlencode(filters, doseq=True)}" if filters else ""
        if collection in _KEYSTONE:
            return self.keystone("GET", f"/{collection}{query}", token=token)[collection]
        return self.neutron("GET", f"/{collection}{query}", token)[collection]

    def get(self, token: str, collection: str, obj_id: str) -> dict[str, Any]:
        single = _NEUTRON.get(collection) or _KEYSTONE[collection]
        if collection in _KEYSTONE:
            return self.keystone("GET", f"/{collection}/{obj_id}", token=token)[single]
        return self.neutron("GET", f"/{collection}/{obj_id}", token)[single]

    def delete(self, token: str, collection: str, obj_id: str) -> None:
        if collection in _KEYSTONE:
            self.keystone("DELETE", f"/{collection}/{obj_id}", token=token)
        else:
            self.neutron("DELETE", f"/{collection}/{obj_id}", token)

    def set_tags(
        self, token: str, collection: str, obj_id: str, tags: builtins.list[str]
    ) -> builtins.list[str]:
        """Replace the tags of a Neutron network/subnet/port (standard-attr-tag)."""
        body = self.neutron("PUT", f"/{collection}/{obj_id}/tags", token, body={"tags": tags})
        return body["tags"]

    def extensions(self, token: str) -> builtins.list[str]:
        """Aliases of the Neutron API extensions loaded."""
        return [e["alias"] for e in self.neutron("GET", "/extensions", token)["extensions"]]


def _short(body: Any) -> str:
    text = body if isinstance(body, str) else json.dumps(body)
    return text[:300]
