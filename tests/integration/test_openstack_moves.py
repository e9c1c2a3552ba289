"""Live migration between clouds in OpenStack mode: real Keystone, Neutron, Open vSwitch and a
charon per cloud, three clouds, net1 of A expanded to B and C (encrypted links). A VM's port
moves A -> B -> A -> B -> C (back to the origin, back to a member it left, on to a cloud it
never was in), keeping its MAC and IP (lab.move_vm: the destination's
agent swaps its placeholder for a real port, the VM switches over with a gratuitous ARP, the old
port goes); a VM that stays in A pings it at 20/s throughout and the longest gap of each move is
printed (its target is in the benchmark). After each move every Neutron holds exactly one port
with that MAC that is not a placeholder, and the others a placeholder for it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench import migration
from intercloud.errors import IntercloudError
from intercloud.lab import ovs_instance
from tests.integration.openstack_fixtures import expand_active, openstack_lab
from tests.waiting import wait_for

REMOTE = "intercloud:remote"


@pytest.fixture(scope="module")
def oslab():
    with openstack_lab(3, peers=("AB", "AC")) as lab:
        yield lab


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


def where_frames_go(lab) -> str:
    """Each gateway's br-cloud flows, br-int's MAC table and its Linux bridges' learned MACs
    (what to compare when a moved VM does not answer)."""
    out = []
    for cloud in "ABC":
        rec = lab.cloud(cloud)
        inst = ovs_instance.OvsInstance(rec.ns, Path(rec.ovs_dir))
        out.append(f"--- {cloud} br-cloud\n" + inst.ofctl("br-cloud", "dump-flows", check=False))
        out.append(f"--- {cloud} br-int fdb\n" + inst.appctl("fdb/show", "br-int", check=False))
        fdb = lab.exec(cloud, ["bridge", "fdb", "show", "dynamic"]).stdout
        out.append(
            f"--- {cloud} bridge fdb\n"
            + "".join(ln + "\n" for ln in fdb.splitlines() if " master " in ln)
        )
    return "".join(out)


def test_moves_keep_mac_and_ip_under_ping(oslab):
    lab = oslab
    s1_ip = lab.add_vm("A", "s1", network="net1").ip.split("/")[0]
    exp = expand_active(lab, "net1", ["B", "C"])
    # the journeys A -> B -> A and A -> B -> C in one, with a return to a member the VM
    # left (B) between them; `mv` ends in C for the tests below
    _journey(lab, s1_ip, "mv", (("A", "B"), ("B", "A"), ("A", "B"), ("B", "C")))
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
    starts = []
    with migration.Pings(lab, "A/s1", ip) as pings:
        time.sleep(1)
        for src, dst in hops:
            starts.append(lab.move_vm(src, dst, name))
            try:
                wait_for(
                    lambda dst=dst: (
                        lab.exec(f"{dst}/{name}", ["ping", "-c", "1", "-W", "1", s1_ip]).returncode
                        == 0
                    ),
                    30,
                    what=f"{name} in {dst} -> s1",
                )
            except AssertionError:
                print(where_frames_go(lab))
                raise
            got = wait_for(lambda dst=dst: settled(lab, mac, dst), 60, what=f"ports after -> {dst}")
            print(f"{name} after the move to {dst}: {got}")
            time.sleep(1)
    gaps = pings.gaps(starts)
    route = " -> ".join([hops[0][0]] + [d for _, d in hops])
    print(
        f"OpenStack moves {route}, longest gap per move (s): " + ", ".join(f"{g:.3f}" for g in gaps)
    )
    # after every move s1 reached the VM again, wherever it was
    for start in starts:
        assert pings.answered_after(start) >= 5, (start, pings.out[-500:])


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
