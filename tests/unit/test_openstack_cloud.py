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
