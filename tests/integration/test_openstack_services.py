"""A real Keystone and a real Neutron API in a namespace of their own: tokens, projects and
users, project isolation in Neutron, tags, token validation by a service user, and a stop that
leaves nothing behind."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from intercloud.lab import namespaces, processes
from intercloud.lab.openstack.api import OpenStackApiError
from tests.integration.openstack_fixtures import Cloud, openstack_cloud

CIDR = "10.77.0.0/24"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    started = time.monotonic()
    with openstack_cloud(Path(tmp_path_factory.mktemp("openstack"))) as (svc, api):
        print(f"keystone+neutron answered after {time.monotonic() - started:.1f} s")
        yield svc, api


@pytest.fixture(scope="module")
def users(cloud: Cloud) -> dict[str, dict]:
    """p1/u1 and p2/u2 (members), u3 a reader of p1; each with a token."""
    _, api = cloud
    made = {}
    for user, project, role in (
        ("u1", "p1", "member"),
        ("u2", "p2", "member"),
        ("u3", "p1", "reader"),
    ):
        proj = api.create_project(project)
        api.create_user(user, f"{user}-pw", project, role)
        made[user] = {
            "project_id": proj["id"],
            "token": api.user_token(user, f"{user}-pw", project),
        }
    return made


def test_admin_token_and_catalog(cloud: Cloud) -> None:
    svc, api = cloud
    token = api.admin_token()
    info = api.validate_token(token)
    assert info["user"]["name"] == "admin" and info["project"]["name"] == "admin"
    assert {"admin", "member", "reader"} <= {r["name"] for r in info["roles"]}
    network = [s for s in info["catalog"] if s["type"] == "network"]
    assert network and {e["url"].rstrip("/") for e in network[0]["endpoints"]} == {
        svc.neutron_url.rstrip("/")
    }
    assert {"member", "reader", "admin"} <= {r["name"] for r in api.list(token, "roles")}
    assert "standard-attr-tag" in api.extensions(token)
    # Neutron wants a token from Keystone, not any string
    with pytest.raises(OpenStackApiError) as err:
        api.list("not-a-token", "networks")
    assert err.value.status == 401


def test_projects_are_isolated(cloud: Cloud, users: dict[str, dict]) -> None:
    _, api = cloud
    u1, u2 = users["u1"], users["u2"]
    net = api.create_network(u1["token"], "n1", CIDR, "10.77.0.1")
    assert net["project_id"] == u1["project_id"]
    assert net["subnet"]["cidr"] == CIDR and net["subnet"]["gateway_ip"] == "10.77.0.1"

    port = api.create_port(u1["token"], net["id"], name="vm1")
    assert ipaddress.ip_address(port["ip"]) in ipaddress.ip_network(CIDR)
    assert len(port["mac"].split(":")) == 6 and port["project_id"] == u1["project_id"]

    assert net["id"] in {n["id"] for n in api.list(u1["token"], "networks")}
    assert net["id"] not in {n["id"] for n in api.list(u2["token"], "networks")}
    assert api.list(u2["token"], "ports", network_id=net["id"]) == []
    with pytest.raises(OpenStackApiError) as err:
        api.get(u2["token"], "networks", net["id"])
    assert err.value.status == 404
    assert net["id"] in {n["id"] for n in api.list(api.admin_token(), "networks")}

    # a reader of p1 sees p1's network but may not make one
    assert net["id"] in {n["id"] for n in api.list(users["u3"]["token"], "networks")}
    with pytest.raises(OpenStackApiError) as err:
        api.create_network(users["u3"]["token"], "n3", "10.78.0.0/24", "10.78.0.1")
    assert err.value.status == 403


def test_tags(cloud: Cloud, users: dict[str, dict]) -> None:
    _, api = cloud
    tok = users["u1"]["token"]
    net = api.create_network(tok, "tagged", "10.79.0.0/24", "10.79.0.1")
    assert api.set_tags(tok, "networks", net["id"], ["intercloud", "x:1"]) == ["intercloud", "x:1"]
    assert sorted(api.get(tok, "networks", net["id"])["tags"]) == ["intercloud", "x:1"]
    assert api.set_tags(tok, "subnets", net["subnet_id"], ["intercloud"]) == ["intercloud"]
    port = api.create_port(tok, net["id"])
    assert api.set_tags(tok, "ports", port["id"], ["intercloud"]) == ["intercloud"]
    assert [n["id"] for n in api.list(tok, "networks", tags="intercloud")] == [net["id"]]
    assert [p["id"] for p in api.list(tok, "ports", tags="intercloud")] == [port["id"]]


def test_service_user_validates_tokens(cloud: Cloud, users: dict[str, dict]) -> None:
    svc, api = cloud
    creds = svc.agent_credentials()
    service_token = api.issue_token(creds["username"], creds["password"], creds["project_name"])
    info = api.validate_token(users["u1"]["token"], token=service_token)
    assert info["user"]["name"] == "u1"
    assert info["project"]["id"] == users["u1"]["project_id"]
    assert {r["name"] for r in info["roles"]} >= {"member"}
    assert "admin" not in {r["name"] for r in info["roles"]}
    with pytest.raises(OpenStackApiError) as err:
        api.validate_token("gAAAAAnot-a-token", token=service_token)
    assert err.value.status == 404


def test_stop_leaves_nothing(cloud: Cloud) -> None:
    """Last in the file: stops the module's services itself."""
    svc, api = cloud
    pids = svc.pids()
    assert len(pids) == 2
    api.close()  # its request process lives in the namespace too
    svc.stop()
    assert not [p for p in pids if processes.pid_alive(p)]
    assert namespaces.namespace_pids(svc.ns) == []
    namespaces.delete_namespace(svc.ns)
    assert not namespaces.exists(svc.ns)
