"""Live migration between clouds in OpenStack mode: real Keystone, Neutron, Open vSwitch and a
charon per cloud, three clouds, net1 of A expanded to B and C (encrypted links). A VM's port
moves A -> B -> A, another A -> B -> C, keeping its MAC and IP (lab.move_vm: the destination's
agent swaps its placeholder for a real port, the VM switches over with a gratuitous ARP, the old
port goes); a VM that stays in A pings it at 20/s throughout and the longest gap of each move is
printed (its target is in the benchmark). After each move every Neutron holds exactly one port
with that MAC that is not a placeholder, and the others a placeholder for it."""

from __future__ import annotations

import os
import secrets
import subprocess
import time

import pytest

from bench import migration
from intercloud.errors import IntercloudError
from intercloud.lab import nsexec
from intercloud.lab.openstack.lab import OpenStackLab
from tests.waiting import wait_for

REMOTE = "intercloud:remote"


@pytest.fixture(scope="module")
def oslab():
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (network namespaces); run them as root")
    lab = OpenStackLab("o" + secrets.token_hex(3))
    try:
        lab.up(3)
        lab.peer("A", "B")
        lab.peer("A", "C")
        yield lab
    finally:
        lab.down()


def holders(lab, mac: str) -> dict[str, list[str]]:
    """Cloud -> device_owner of each port with `mac` in its Neutron."""
    out = {}
    for cloud in "ABC":
        with lab.services(cloud).api() as api:
            tok = api.admin_token()
            out[cloud] = sorted(p["device_owner"] for p in api.list(tok, "ports", mac_address=mac))
    return out


def settled(lab, mac: str, at: str) -> dict | None:
    """One real port in `at`, one placeholder everywhere else (None: not yet)."""
    got = holders(lab, mac)
    real = {c: [o for o in owners if o != REMOTE] for c, owners in got.items()}
    if all(len(real[c]) == (1 if c == at else 0) for c in "ABC") and all(
        got[c].count(REMOTE) == (0 if c == at else 1) for c in "ABC"
    ):
        return got
    return None


def test_moves_keep_mac_and_ip_under_ping(oslab):
    lab = oslab
    s1_ip = lab.add_vm("A", "s1", network="net1").ip.split("/")[0]
    body = {"network": "net1", "peers": ["B", "C"]}
    exp = lab.api("A", "POST", "/v1/expansions", body, token="p1")
    wait_for(
        lambda: (
            lab.api("A", "GET", f"/v1/expansions/{exp['id']}", token="p1")["status"] == "active"
        ),
        90,
        what="the expansion to B and C",
    )
    # the two journeys, each by its own VM: A -> B -> A, then A -> B -> C (`mv` ends in
    # C for the tests below). A VM that comes back to a member it left is not reliable yet (see
    # docs/openstack.md, Limits): that is not claimed here.
    for name, hops in (("mw", (("A", "B"), ("B", "A"))), ("mv", (("A", "B"), ("B", "C")))):
        _journey(lab, s1_ip, name, hops)
    moves = lab.api("A", "GET", f"/v1/expansions/{exp['id']}/moves", token="p1")
    seen = [(m["from"], m["to"]) for m in moves]
    for pair in (("A", "B"), ("B", "A"), ("B", "C")):
        assert pair in seen, seen


def _journey(lab, s1_ip: str, name: str, hops) -> None:
    """VM `name` made in A moves along `hops` while s1 (staying in A) pings it at 20/s."""
    vm = lab.add_vm("A", name, network="net1")
    ip, mac = vm.ip.split("/")[0], str(vm.mac)
    wait_for(lambda: settled(lab, mac, "A"), 60, what=f"placeholders of {name} in B and C")
    wait_for(
        lambda: lab.exec("A/s1", ["ping", "-c", "1", "-W", "1", ip]).returncode == 0,
        30,
        what=f"s1 -> {name}",
    )
    ping = subprocess.Popen(
        nsexec.exec_argv(lab.namespace("A/s1"), ["ping", "-D", "-i", "0.05", "-W", "1", ip]),
        stdout=subprocess.PIPE,
        text=True,
    )
    starts = []
    try:
        time.sleep(1)
        for src, dst in hops:
            starts.append(lab.move_vm(src, dst, name))
            wait_for(
                lambda dst=dst: (
                    lab.exec(f"{dst}/{name}", ["ping", "-c", "1", "-W", "1", s1_ip]).returncode == 0
                ),
                30,
                what=f"{name} in {dst} -> s1",
            )
            got = wait_for(lambda dst=dst: settled(lab, mac, dst), 60, what=f"ports after -> {dst}")
            print(f"{name} after the move to {dst}: {got}")
            time.sleep(1)
    finally:
        ping.terminate()
        out = ping.communicate(timeout=10)[0]
    gaps = migration.gaps(out, starts)
    route = " -> ".join([hops[0][0]] + [d for _, d in hops])
    print(
        f"OpenStack moves {route}, longest gap per move (s): " + ", ".join(f"{g:.3f}" for g in gaps)
    )
    replies = [float(m.group(1)) for ln in out.splitlines() if (m := migration.REPLY.match(ln))]
    for start in starts:
        assert sum(1 for t in replies if t > start + 1.0) >= 5, (start, out[-500:])


def test_refusals(oslab):
    lab = oslab
    st = lab.state()
    s1 = st.vms["A/s1"]
    rep = lab.replica_network("B", "A", "net1")
    # an address outside the network
    with pytest.raises(IntercloudError) as err:
        lab.api("B", "POST", "/v1/moves", {"network": rep["id"], "mac": s1.mac, "ip": "192.0.2.7"})
    assert err.value.status == 422 and "ip" in err.value.message, err.value.message
    # s1's MAC with another address: held by another live port
    with pytest.raises(IntercloudError) as err:
        lab.api(
            "B", "POST", "/v1/moves", {"network": rep["id"], "mac": s1.mac, "ip": "10.10.0.250"}
        )
    assert err.value.status == 409 and "held by another live port" in err.value.message
    # a MAC no cloud of the network has: nothing to move
    with pytest.raises(IntercloudError) as err:
        lab.api(
            "B",
            "POST",
            "/v1/moves",
            {"network": rep["id"], "mac": "fa:16:3e:77:77:77", "ip": "10.10.0.250"},
        )
    assert err.value.status == 409 and "nothing to move" in err.value.message
    # the MAC of a live port of this very cloud
    mv = st.vms["C/mv"]
    with pytest.raises(IntercloudError) as err:
        lab.api(
            "C",
            "POST",
            "/v1/moves",
            {
                "network": lab.replica_network("C", "A", "net1")["id"],
                "mac": mv.mac,
                "ip": mv.ip.split("/")[0],
            },
        )
    assert err.value.status == 409 and "in this cloud" in err.value.message


def test_deleting_the_vm_leaves_nothing(oslab):
    lab = oslab
    mac = str(lab.state().vms["C/mv"].mac)
    lab.remove_vm("C", "mv")
    wait_for(
        lambda: all(v == [] for v in holders(lab, mac).values()),
        60,
        what="no port with mv's MAC anywhere",
    )
