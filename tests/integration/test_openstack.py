"""OpenStack mode end to end: per cloud a real Keystone, a real Neutron API, a real Open
vSwitch (userspace datapath) and a charon in its gateway namespace; agents with the openstack
cloud driver and the ovs data plane (kernel tunnels), links encrypted; users with Keystone
tokens; VMs are Neutron ports plugged into br-int with local VLANs that differ between the
clouds."""

from __future__ import annotations

import os
import signal

import pytest

from intercloud.domain import pools
from intercloud.errors import NotFound
from tests.integration.openstack_fixtures import openstack_lab
from tests.waiting import wait_for


@pytest.fixture(scope="module")
def oslab():
    with openstack_lab(2) as lab:
        yield lab


def _ports(api, tok: str, network_id: str) -> list:
    return sorted(
        [p["mac_address"], p["fixed_ips"][0]["ip_address"], p["device_owner"]]
        for p in api.list(tok, "ports", network_id=network_id)
    )


def _pools(subnet: dict) -> list:
    return [[p["start"], p["end"]] for p in subnet["allocation_pools"]]


def replica_objects(lab, cloud: str) -> dict:
    """What the agent of `cloud` made in its Keystone and Neutron (found by tag)."""
    with lab.services(cloud).api() as api:
        tok = api.admin_token()
        result: dict = {"networks": [], "projects": []}
        for n in api.list(tok, "networks", tags="intercloud"):
            sns = api.list(tok, "subnets", network_id=n["id"])
            result["networks"].append(
                {
                    "id": n["id"],
                    "name": n["name"],
                    "tags": sorted(n["tags"]),
                    "project": api.get(tok, "projects", n["project_id"])["name"],
                    "subnets": [
                        {"cidr": s["cidr"], "gateway": s["gateway_ip"], "pools": _pools(s)}
                        for s in sns
                    ],
                    "ports": _ports(api, tok, n["id"]),
                }
            )
        projects = api.list(tok, "projects")
        for p in projects:
            if "intercloud" in (p.get("tags") or []):
                result["projects"].append(p["name"])
        # untagged networks in replicated projects would be orphans of a crash
        replicated = {p["id"] for p in projects if "." in p["name"]}
        result["untagged"] = [
            n["id"]
            for n in api.list(tok, "networks")
            if n["project_id"] in replicated and "intercloud" not in (n.get("tags") or [])
        ]
    return result


def origin_network(lab, cloud: str, name: str) -> dict:
    with lab.services(cloud).api() as api:
        tok = api.admin_token()
        net_id = lab.cloud(cloud).networks[name].id
        s = api.list(tok, "subnets", network_id=net_id)[0]
        return {"pools": _pools(s), "ports": _ports(api, tok, net_id)}


def project_defaults(lab, cloud: str, project: str, mac: str) -> dict:
    """Whether the port with `mac` is in `project`'s default security group; its network quota."""
    with lab.services(cloud).api() as api:
        tok = api.admin_token()
        pid = api.find("projects", project)["id"]
        path = f"/security-groups?project_id={pid}&name=default"
        sg = api.neutron("GET", path, tok)["security_groups"][0]
        port = api.list(tok, "ports", mac_address=mac)[0]
        quota = api.neutron("GET", f"/quotas/{pid}", tok)["quota"]
        return {
            "default_sg": sg["id"] in port["security_groups"],
            "networks_quota": quota["network"],
        }


def active(lab, cloud: str, project: str, uid: str):
    exp = lab.api(cloud, "GET", f"/v1/expansions/{uid}", token=project)
    return exp if exp["status"] == "active" else None


def ping(lab, vm, ip: str, count: int = 3) -> bool:
    target = vm.target
    r = lab.exec(target, ["ping", "-c", str(count), "-i", "0.3", "-W", "2", ip.split("/")[0]])
    return r.returncode == 0


def test_member_expands_a_neutron_network_with_a_keystone_token(oslab):
    lab = oslab
    a1 = lab.add_vm("A", "a1", network="net1")
    exp = lab.api("A", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]}, token="p1")
    uid = exp["id"]
    wait_for(lambda: active(lab, "A", "p1", uid), 60, what="the expansion to become active")

    # B's Keystone and Neutron hold the replicated project, network, subnet and ports
    made = replica_objects(lab, "B")
    assert made["projects"] == ["A.p1"]
    assert made["untagged"] == []
    [net] = made["networks"]
    assert (net["name"], net["project"]) == ("net1", "A.p1")
    assert f"intercloud-uid={uid}" in net["tags"]
    [subnet] = net["subnets"]
    assert (subnet["cidr"], subnet["gateway"]) == ("10.10.0.0/24", "10.10.0.1")
    # split pools: B's slice and A's shrunk pool are disjoint and together A's old pool
    [[b_first, b_last]] = subnet["pools"]
    a_net = origin_network(lab, "A", "net1")
    full = [("10.10.0.2", "10.10.0.254")]
    assert [tuple(r) for r in a_net["pools"]] == pools.subtract(full, (b_first, b_last))
    assert pools.size_of([(b_first, b_last)]) == 63  # a quarter of A's pool
    assert not _between(a1.ip.split("/")[0], b_first, b_last)  # A's VM is not in B's slice
    # a1 stands in B's Neutron as a placeholder (security groups admit it, nobody takes its IP)
    a1_ip = a1.ip.split("/")[0]
    assert [a1.mac, a1_ip, "intercloud:remote"] in net["ports"]
    # ... in the replicated project's default security group; its quota is the agreement's
    seen = project_defaults(lab, "B", "A.p1", a1.mac)
    assert seen == {"default_sg": True, "networks_quota": 10}

    # a VM in B on the replica gets its address from B's slice, and the two ping at L2
    b1 = lab.add_vm("B", "b1", replica_of="A/net1")
    b1_ip = b1.ip.split("/")[0]
    assert _between(b1_ip, b_first, b_last)
    assert wait_for(lambda: ping(lab, a1, b1_ip), 30, what="a1 -> b1 ping")
    assert ping(lab, b1, a1_ip)
    # The VMs have their network's MTU (Neutron's, 1450 for VXLAN networks); the encrypted
    # link leaves less: a DF ping of the link's VM MTU crosses, a bigger one gets the ICMP
    # "fragmentation needed" naming it (the kernel VXLAN port answers for the path), and TCP
    # is clamped to it (test_openstack_encryption.py sends 100 MB).
    assert a1.mtu == b1.mtu == 1450
    vm_mtu = lab.api("A", "GET", "/v1/links/B")["mtu_budget"]["vm_mtu"]
    assert vm_mtu < 1450
    fits = lab.exec(
        "A/a1", ["ping", "-c", "2", "-W", "2", "-M", "do", "-s", str(vm_mtu - 28), b1_ip]
    )
    assert fits.returncode == 0, fits.stdout
    big = lab.exec("A/a1", ["ping", "-c", "2", "-W", "2", "-M", "do", "-s", "1422", b1_ip])
    assert f"mtu = {vm_mtu}" in big.stdout + big.stderr, (big.stdout, big.stderr)
    # different local VLANs on the two br-int: the tunnels translate
    vlans = {c: set(lab.cloud(c).vlans.values()) for c in ("A", "B")}
    assert vlans["A"].isdisjoint(vlans["B"])
    # and b1 becomes a placeholder in A's Neutron
    wait_for(
        lambda: [b1.mac, b1_ip, "intercloud:remote"] in origin_network(lab, "A", "net1")["ports"],
        30,
        what="b1's placeholder in A",
    )


def test_another_project_gets_404_and_changes_nothing(oslab):
    lab = oslab
    [exp] = lab.api("A", "GET", "/v1/expansions", token="p1")
    before = (replica_objects(lab, "B"), origin_network(lab, "A", "net1"))
    for method, path, body in (
        ("GET", f"/v1/expansions/{exp['id']}", None),
        ("DELETE", f"/v1/expansions/{exp['id']}", None),
        ("POST", "/v1/expansions", {"network": "net1", "peers": ["B"]}),
    ):
        with pytest.raises(NotFound) as err:
            lab.api("A", method, path, body, token="p2")
        assert err.value.status == 404
    assert lab.api("A", "GET", "/v1/expansions", token="p2") == []
    assert [n["name"] for n in lab.api("A", "GET", "/v1/networks", token="p2")] == ["net2"]
    # a token Keystone does not know is refused
    status, _ = lab.api_raw("A", "GET", "/v1/expansions", token="gAAAAAnot-a-token")
    assert status == 401
    assert (replica_objects(lab, "B"), origin_network(lab, "A", "net1")) == before
    assert active(lab, "A", "p1", exp["id"])


def test_peer_agent_killed_during_an_expansion_converges_without_orphans(oslab):
    lab = oslab
    exp = lab.api("A", "POST", "/v1/expansions", {"network": "net2", "peers": ["B"]}, token="p2")
    # kill B's agent as soon as it starts making the replica in its cloud
    wait_for(lambda: "A.p2" in replica_objects(lab, "B")["projects"], 30, what="B to start")
    pid = lab.cloud("B").pid
    os.kill(pid, signal.SIGKILL)
    lab.stop_agent("B")
    lab.start_agent("B")
    wait_for(lambda: active(lab, "A", "p2", exp["id"]), 60, what="net2's expansion to converge")
    made = replica_objects(lab, "B")
    uids = sorted(t for n in made["networks"] for t in n["tags"] if t.startswith("intercloud-uid"))
    assert len(uids) == len(set(uids)) == 2  # one network per expansion, none twice
    assert made["untagged"] == []
    assert sorted(made["projects"]) == ["A.p1", "A.p2"]
    # the earlier expansion survived the restart untouched
    [exp1] = lab.api("A", "GET", "/v1/expansions", token="p1")
    assert active(lab, "A", "p1", exp1["id"])


def test_deleting_expansions_removes_the_replicas_and_gives_the_pool_back(oslab):
    lab = oslab
    for project in ("p1", "p2"):
        for exp in lab.api("A", "GET", "/v1/expansions", token=project):
            lab.api("A", "DELETE", f"/v1/expansions/{exp['id']}", token=project)

    def gone() -> bool:
        return all(lab.api("A", "GET", "/v1/expansions", token=p) == [] for p in ("p1", "p2"))

    wait_for(gone, 60, what="both expansions to be deleted")
    made = wait_for(
        lambda: (lambda m: m if not m["networks"] and not m["projects"] else None)(
            replica_objects(lab, "B")
        ),
        30,
        what="B's replicas to go",
    )
    assert made["untagged"] == []
    a_net = origin_network(lab, "A", "net1")
    assert a_net["pools"] == [["10.10.0.2", "10.10.0.254"]]
    assert not [p for p in a_net["ports"] if p[2] == "intercloud:remote"]


def _between(ip: str, first: str, last: str) -> bool:
    def key(x: str) -> tuple[int, ...]:
        return tuple(int(p) for p in x.split("."))

    return key(first) <= key(ip) <= key(last)
