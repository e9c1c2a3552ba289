"""The tenant API proxy end to end: two clouds with a real Keystone, Neutron API, Open vSwitch
and agents (the OpenStack lab, one for the whole module); a member of p1 in A, holding only
A's credentials, works in B's replica of its network with the unmodified `openstack` CLI
(pinned python-openstackclient) through A's agent."""

from __future__ import annotations

import json

import pytest

from intercloud.lab.openstack import tenant
from intercloud.lab.openstack.plug import plug_port
from tests.integration.openstack_fixtures import expand_active, openstack_lab
from tests.waiting import wait_for


@pytest.fixture(scope="module")
def oslab(tmp_path_factory):
    with openstack_lab(2, prefix="x") as lab:
        expand_active(lab, "net1", ["B"])
        lab.add_vm("A", "a1", network="net1")
        tenant.install_plugin()  # this checkout's `openstack intercloud` commands
        clouds = tenant.clouds_yaml(lab, "A", "p1", peers=("B",))
        clouds["clouds"] |= tenant.clouds_yaml(lab, "A", "p2", name="A-p2")["clouds"]
        clouds["clouds"] |= tenant.clouds_yaml(lab, "A", "admin", name="A-admin")["clouds"]
        path = tenant.write_clouds_yaml(tmp_path_factory.mktemp("tenant") / "clouds.yaml", clouds)
        yield lab, path


def osc(lab, path, cloud: str, *args: str):
    """The CLI's JSON output (it must succeed)."""
    proc = tenant.openstack(lab, "A", path, "--os-cloud", cloud, *args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout) if "json" in args else proc.stdout


def b_ports(lab) -> dict[str, dict]:
    """Every port in B's Neutron, as B's admin sees it."""
    with lab.services("B").api() as api:
        return {p["id"]: p for p in api.list(api.admin_token(), "ports")}


def replica_project_id(lab) -> str:
    with lab.services("B").api() as api:
        return api.find("projects", "A.p1")["id"]


def ping(lab, vm, ip: str) -> bool:
    return lab.exec(vm.target, ["ping", "-c", "1", "-W", "1", ip.split("/")[0]]).returncode == 0


def test_a_member_of_A_makes_a_port_in_B_with_the_openstack_cli_and_a_vm_on_it_pings_A(oslab):
    lab, path = oslab
    replica = lab.replica_network("B", "A", "net1")
    nets = osc(lab, path, "A-in-B", "network", "list", "-f", "json")
    assert [n["ID"] for n in nets] == [replica["id"]]  # B's replica, and nothing else of B
    port = osc(
        lab, path, "A-in-B", "port", "create", "--network", replica["id"], "vm-b1", "-f", "json"
    )
    in_b = b_ports(lab)[port["id"]]  # B's Neutron holds it, in the replicated project
    assert in_b["project_id"] == replica_project_id(lab)
    assert in_b["network_id"] == replica["id"] and in_b["name"] == "vm-b1"

    b1 = plug_port(lab, "B", "b1", port["id"])
    a1 = lab.state().vms["A/a1"]
    wait_for(lambda: ping(lab, b1, a1.ip), 30, what="b1 (on the proxied port) to reach a1 in A")

    listed = osc(lab, path, "A-in-B", "port", "list", "-f", "json")
    assert port["id"] in [p["ID"] for p in listed]
    shown = osc(lab, path, "A-in-B", "port", "show", port["id"], "-f", "json")
    assert shown["mac_address"] == b1.mac and shown["name"] == "vm-b1"
    osc(lab, path, "A-in-B", "port", "delete", port["id"])
    assert port["id"] not in b_ports(lab)
    lab.remove_vm("B", "b1")
    left = [p for p in b_ports(lab).values() if p["name"] == "vm-b1"]
    assert left == []


def _status(lab, method: str, path: str, body=None, token="p1") -> tuple[int, object]:
    return lab.api_raw("A", method, f"/v1/proxy/B/{path}", body, token=token)


def test_refusals_change_nothing_in_B(oslab):
    lab, _ = oslab
    b_net1 = lab.cloud("B").networks["net1"].id
    theirs = lab.services("B").create_port(b_net1, "p1", name="b-local")  # B's own p1
    before = b_ports(lab)

    status, body = _status(lab, "GET", f"network/v2.0/ports/{theirs['id']}")
    assert status == 404 and "NeutronError" in body, body  # as Neutron says it to a member
    status, body = _status(lab, "GET", "network/v2.0/ports", token="p2")
    assert status == 403 and "project 'p2' has no expansion into 'B'" in str(body)
    status, body = _status(lab, "GET", "image/v2/images")
    assert status == 403 and "'image' is not allowed" in str(body)
    status, body = _status(lab, "GET", "network/v2.0/ports", token=None)
    assert status == 401
    status, body = _status(lab, "GET", "network/v2.0/ports", token=lab.cloud("B").projects["p1"])
    assert status == 401  # a token of B's Keystone means nothing to A
    admin_only = {"network": {"name": "x", "provider:network_type": "vxlan"}}
    status, body = _status(lab, "POST", "network/v2.0/networks", admin_only)
    assert status == 403 and "PolicyNotAuthorized" in str(body), body
    status, body = _status(lab, "POST", "network/v2.0/ports", {"port": {"name": "x" * 300_000}})
    assert status == 413, body
    status, body = _status(lab, "GET", "network/v2.0/../../v3/users")
    assert status in (403, 404, 422), body  # never B's Keystone
    assert b_ports(lab) == before

    lab.stop_agent("B")
    try:
        status, body = _status(lab, "GET", "network/v2.0/ports")
        assert status == 502 and "peer B: its agent is unreachable" in str(body), body
    finally:
        lab.start_agent("B")
    status, body = _status(lab, "GET", "network/v2.0/ports")
    assert status == 200, body
    assert b_ports(lab) == before


def test_the_openstack_cli_plugin_expands_lists_shows_and_deletes(oslab):
    lab, path = oslab
    made = osc(
        lab,
        path,
        "A-p2",
        "intercloud",
        "expansion",
        "create",
        "net2",
        "--peer",
        "B",
        "--wait",
        "-f",
        "json",
    )
    assert made["status"] == "active" and made["network"] == "net2" and made["project"] == "p2"
    assert lab.replica_network("B", "A", "net2")["project"] == "A.p2"  # B made the replica
    listed = osc(lab, path, "A-p2", "intercloud", "expansion", "list", "-f", "json")
    assert [(e["id"], e["status"]) for e in listed] == [(made["id"], "active")]
    table = osc(lab, path, "A-p2", "intercloud", "expansion", "list")
    assert made["id"] in table and "B=active" in table
    shown = osc(lab, path, "A-p2", "intercloud", "expansion", "show", "net2", "-f", "json")
    assert shown["id"] == made["id"] and shown["peers"][0]["peer"] == "B"
    nets = osc(lab, path, "A-p2", "intercloud", "network", "list", "-f", "json")
    assert [(n["name"], n["expansion"]) for n in nets] == [("net2", made["id"])]
    # the admin's commands, and a member is refused them in one line
    peers = osc(lab, path, "A-admin", "intercloud", "peer", "list", "-f", "json")
    assert [p["name"] for p in peers] == ["B"]
    agreement = osc(lab, path, "A-admin", "intercloud", "agreement", "show", "B", "-f", "json")
    assert agreement["proxy_services"] == ["compute", "network"]
    link = osc(lab, path, "A-admin", "intercloud", "link", "show", "B", "-f", "json")
    assert link["peer"] == "B"
    status = osc(lab, path, "A-admin", "intercloud", "status", "-f", "json")
    assert status["agent"] == "A" and status["cloud"] == "openstack"
    refused = tenant.openstack(lab, "A", path, "--os-cloud", "A-p2", "intercloud", "peer", "list")
    assert refused.returncode != 0 and "HTTP 403" in refused.stderr
    assert "Traceback" not in refused.stderr

    osc(lab, path, "A-p2", "intercloud", "expansion", "delete", made["id"], "--wait")
    assert osc(lab, path, "A-p2", "intercloud", "expansion", "list", "-f", "json") == []
