"""The openstack cloud driver's token rules, against a stand-in Keystone (the real one is in
tests/integration/test_openstack_*.py)."""

from __future__ import annotations

import pytest

from intercloud.config import CloudSection
from intercloud.drivers.cloud.openstack import OpenStackCloud
from intercloud.errors import CloudError


class Response:
    def __init__(self, status: int, body: dict | None = None) -> None:
        self.status_code = status
        self._body = body or {}

    def json(self) -> dict:
        return self._body


class Identity:
    def __init__(self) -> None:
        self.tokens: dict[str, dict] = {}
        self.calls = 0
        self.status: int | None = None

    def get(self, path, headers, raise_exc):
        assert path == "/auth/tokens" and raise_exc is False
        self.calls += 1
        if self.status is not None:
            return Response(self.status)
        tok = self.tokens.get(headers["X-Subject-Token"])
        return Response(404) if tok is None else Response(200, {"token": tok})


class Conn:
    def __init__(self) -> None:
        self.identity = Identity()


def token(roles, project="p1", domain="Default"):
    body = {"roles": [{"name": r} for r in roles]}
    if project:
        body["project"] = {"name": project, "domain": {"name": domain}}
    return body


@pytest.fixture
def cloud():
    conn = Conn()
    drv = OpenStackCloud(CloudSection(driver="openstack"), connect=lambda: conn)
    return drv, conn.identity


def test_member_of_a_project_gets_the_user_api(cloud):
    drv, ks = cloud
    ks.tokens["t"] = token(["member", "reader"])
    p = drv.authenticate("t")
    assert (p.admin, p.project) == (False, "p1")


def test_admin_role_gets_the_admin_api_and_its_project(cloud):
    drv, ks = cloud
    ks.tokens["t"] = token(["admin", "member", "reader"], project="admin")
    p = drv.authenticate("t")
    assert (p.admin, p.project) == (True, "admin")


def test_reader_only_or_other_domain_or_unscoped_is_no_project(cloud):
    drv, ks = cloud
    ks.tokens["reader"] = token(["reader"])
    ks.tokens["other"] = token(["member"], domain="Elsewhere")
    ks.tokens["unscoped"] = token([], project=None)
    for t in ("reader", "other", "unscoped"):
        p = drv.authenticate(t)
        assert (p.admin, p.project) == (False, None), t


def test_unknown_token_is_none_and_answers_are_cached(cloud):
    drv, ks = cloud
    assert drv.authenticate("nope") is None
    ks.tokens["t"] = token(["member"])
    assert drv.authenticate("t").project == "p1"
    calls = ks.calls
    assert drv.authenticate("t").project == "p1"
    assert drv.authenticate("nope") is None
    assert ks.calls == calls  # both answers served from the cache


def test_keystone_failing_is_a_cloud_error_not_a_refusal(cloud):
    drv, ks = cloud
    ks.status = 500
    with pytest.raises(CloudError, match="HTTP 500"):
        drv.authenticate("t")


# Keystone grants roles per project: the admin role of one's own project is no admin of the cloud
# (issue 13, finding 13). Bodies as Keystone 2024.x answers GET /v3/auth/tokens (trimmed).


def system_token(roles):
    return {"roles": [{"name": r} for r in roles], "system": {"all": True}}


def test_a_project_admin_of_another_project_is_no_agent_admin(cloud):
    drv, ks = cloud
    ks.tokens["t"] = token(["admin", "member", "reader"], project="p9")
    p = drv.authenticate("t")
    assert (p.admin, p.project) == (False, "p9")  # the user API of its own project only


def test_only_the_configured_admin_project_or_system_scope_gives_the_admin_api():
    conn = Conn()
    cfg = CloudSection(driver="openstack", admin_project="cloud-admins")
    drv = OpenStackCloud(cfg, connect=lambda: conn)
    ks = conn.identity
    ks.tokens["ours"] = token(["admin"], project="cloud-admins")
    ks.tokens["admin-project"] = token(["admin"], project="admin")  # not the configured one
    ks.tokens["other-domain"] = token(["admin"], project="cloud-admins", domain="Elsewhere")
    ks.tokens["reader"] = token(["reader", "member"], project="cloud-admins")
    ks.tokens["system"] = system_token(["admin", "member", "reader"])
    ks.tokens["system-reader"] = system_token(["reader"])
    ks.tokens["domain"] = {"roles": [{"name": "admin"}], "domain": {"name": "Default"}}
    got = {t: drv.authenticate(t) for t in ks.tokens}
    assert {t: p.admin for t, p in got.items()} == {
        "ours": True,
        "admin-project": False,
        "other-domain": False,
        "reader": False,
        "system": True,
        "system-reader": False,
        "domain": False,
    }
    assert got["system"].project is None and got["admin-project"].project == "admin"


def test_a_token_body_of_the_wrong_shape_is_no_principal_of_note(cloud):
    drv, ks = cloud
    ks.tokens["t"] = {"roles": ["admin", None], "system": "all", "project": {"name": "admin"}}
    p = drv.authenticate("t")
    assert (p.admin, p.project) == (False, None)


class Identity2(Identity):
    def __init__(self, project) -> None:
        super().__init__()
        self.project = project
        self.created: list[str] = []

    def find_project(self, name, domain_id, ignore_missing):
        return self.project if self.project is not None and self.project.name == name else None

    def find_domain(self, name, ignore_missing):
        return type("D", (), {"id": "default"})()

    def create_project(self, name, **kw):
        self.created.append(name)
        raise AssertionError("not reached in this test")


def test_a_replica_never_goes_into_a_local_project_of_the_same_name():
    """A local project named like a replicated one (`A.p1`) is not the peer's to use."""
    from intercloud.drivers.cloud.base import ReplicaSpec

    local = type("P", (), {"id": "p-local", "name": "A.p1", "tags": []})()
    conn = Conn()
    conn.identity = Identity2(local)
    drv = OpenStackCloud(CloudSection(driver="openstack"), connect=lambda: conn)
    with pytest.raises(CloudError, match="not made by intercloud"):
        drv.replicas.project(
            ReplicaSpec(uid="u" * 8, project="A.p1", network="net1", cidr="10.0.0.0/24")
        )
    assert conn.identity.created == []
