"""The pure flow function of the OVS data plane: br-cloud's table from the recorded objects."""

from __future__ import annotations

import pytest

from intercloud.domain.hoststate import Vxlan
from intercloud.drivers.dataplane.ovs import OvsDataplane
from intercloud.drivers.dataplane.ovs.flows import flows, meter_spec, meters, text
from intercloud.errors import DriverError, Invalid

PATCH = 1
DROP = "table=0,priority=0,actions=drop"


def vx(name: str, vni: int, master: str, isolated: bool = False) -> Vxlan:
    return Vxlan(name, vni, "198.18.0.1", "198.18.0.9", master, isolated=isolated)


def by_in_port(lines: list[str]) -> dict[str, str]:
    """'in_port=..,dl_vlan=..' or 'in_port=..,tun_id=..' -> actions (the drop is always there)."""
    assert DROP in lines
    out = {}
    for line in (ln for ln in lines if ln != DROP):
        match, _, actions = line.partition(",actions=")
        out[match.split(",", 2)[2]] = actions
    return out


def to(vni: int, port: int) -> str:
    return f"load:{vni:#x}->NXM_NX_TUN_ID[],output:{port}"


def vlan(tag: int) -> str:
    """Push the local VLAN and go to br-int (OpenFlow 1.3 form: vlan_vid carries 0x1000)."""
    return f"push_vlan:0x8100,set_field:{0x1000 + tag}->vlan_vid,output:{PATCH}"


def metered(meter: int) -> str:
    return f"clone(check_pkt_larger(1)->NXM_NX_REG0[0],load:{meter:#x}->NXM_NX_REG1[],resubmit(,1))"


def test_nothing_recorded_is_a_drop_only_table():
    assert flows([], [], {}, {}, None) == [DROP]
    assert text([DROP]) == DROP + "\n"


def test_local_side_translates_vlan_and_floods_only_to_the_networks_peers():
    tunnels = [vx("icv1", 100, "n1"), vx("icv2", 200, "n1"), vx("icv3", 300, "n2")]
    ports = {"icv1": 10, "icv2": 11, "icv3": 10}  # icv1 and icv3 share one tunnel port
    got = by_in_port(flows(["n1", "n2"], tunnels, ports, {"n1": 5, "n2": 6}, PATCH))
    assert got["in_port=1,dl_vlan=5"] == f"pop_vlan,{to(100, 10)},{to(200, 11)}"
    assert got["in_port=1,dl_vlan=6"] == f"pop_vlan,{to(300, 10)}"
    # from a tunnel: VLAN of the network on this host, out of the patch
    assert got["in_port=10,tun_id=0x64"].endswith(vlan(5))
    assert got["in_port=10,tun_id=0x12c"] == vlan(6)


def test_origin_relays_between_its_tunnels_but_not_back():
    tunnels = [vx("icv1", 100, "n1"), vx("icv2", 200, "n1"), vx("icv3", 300, "n1")]
    ports = {"icv1": 10, "icv2": 11, "icv3": 12}
    got = by_in_port(flows(["n1"], tunnels, ports, {"n1": 5}, PATCH))
    assert got["in_port=11,tun_id=0xc8"] == (f"{to(100, 10)},{to(300, 12)},{vlan(5)}")


def test_no_forward_drops_only_the_named_direction_pairs():
    tunnels = [vx("icv1", 100, "n1"), vx("icv2", 200, "n1"), vx("icv3", 300, "n1")]
    ports = {"icv1": 10, "icv2": 11, "icv3": 12}
    pairs = {("icv1", "icv2"), ("icv2", "icv1")}
    got = by_in_port(flows(["n1"], tunnels, ports, {"n1": 5}, PATCH, pairs))
    assert got["in_port=10,tun_id=0x64"] == f"{to(300, 12)},{vlan(5)}"
    assert got["in_port=11,tun_id=0xc8"] == f"{to(300, 12)},{vlan(5)}"
    assert got["in_port=12,tun_id=0x12c"] == (f"{to(100, 10)},{to(200, 11)},{vlan(5)}")


def test_isolated_members_only_deliver_locally():
    tunnels = [vx("icv1", 100, "n1", True), vx("icv2", 200, "n1", True)]
    got = by_in_port(flows(["n1"], tunnels, {"icv1": 10, "icv2": 11}, {"n1": 5}, PATCH))
    assert got["in_port=10,tun_id=0x64"] == vlan(5)
    assert got["in_port=11,tun_id=0xc8"] == vlan(5)


def test_network_without_local_side_still_relays_and_isolated_one_has_no_flows():
    relay = [vx("icv1", 100, "n1"), vx("icv2", 200, "n1")]
    got = by_in_port(flows(["n1"], relay, {"icv1": 10, "icv2": 11}, {}, PATCH))
    assert got == {
        "in_port=10,tun_id=0x64": to(200, 11),
        "in_port=11,tun_id=0xc8": to(100, 10),
    }
    isolated = [vx("icv1", 100, "n1", True)]
    assert flows(["n1"], isolated, {"icv1": 10}, {}, PATCH) == [DROP]


def test_tunnels_without_port_or_network_and_missing_patch_are_left_out():
    tunnels = [vx("icv1", 100, "n1"), vx("icv2", 200, "n1"), vx("icv9", 900, "gone")]
    ports = {"icv1": 10, "icv9": 12}  # icv2's port is missing
    got = by_in_port(flows(["n1"], tunnels, ports, {"n1": 5}, PATCH))
    assert got == {
        "in_port=1,dl_vlan=5": f"pop_vlan,{to(100, 10)}",
        "in_port=10,tun_id=0x64": vlan(5),
    }
    # no patch port yet: no local side at all
    assert flows(["n1"], tunnels, ports, {"n1": 5}, None) == [DROP]


def test_rate_limited_tunnels_go_through_their_meter_in_a_real_copy():
    tunnels = [
        Vxlan("icv1", 100, "198.18.0.1", "198.18.0.2", "n1", rate_mbit=10),
        vx("icv2", 200, "n1"),
        Vxlan("icv3", 300, "198.18.0.1", "198.18.0.3", "n1", rate_mbit=2.5),
    ]
    m = meters(tunnels)
    assert m == {"icv1": (1, 10000), "icv3": (2, 2500)}
    ids = {name: meter for name, (meter, _) in m.items()}
    ports = {"icv1": 10, "icv2": 11, "icv3": 12}
    lines = flows(["n1"], tunnels, ports, {"n1": 5}, PATCH, meter_ids=ids)
    # the limited copies leave through table 1 (meter, then tunnel id and port) ...
    assert "table=1,priority=10,reg1=0x1,actions=meter:1," + to(100, 10) in lines
    assert "table=1,priority=10,reg1=0x2,actions=meter:2," + to(300, 12) in lines
    table0 = by_in_port([ln for ln in lines if ln.startswith("table=0")])
    # ... from the local side and from a relaying tunnel; the others are sent directly
    assert table0["in_port=1,dl_vlan=5"] == f"pop_vlan,{metered(1)},{to(200, 11)},{metered(2)}"
    assert table0["in_port=11,tun_id=0xc8"] == f"{metered(1)},{metered(2)},{vlan(5)}"
    assert table0["in_port=10,tun_id=0x64"] == f"{to(200, 11)},{metered(2)},{vlan(5)}"
    assert meter_spec(1, 10000) == ("meter=1,kbps,burst,band=type=drop,rate=10000,burst_size=2000")
    # no limits: no meter table at all
    assert not any(ln.startswith("table=1") for ln in flows(["n1"], tunnels, ports, {}, PATCH))


def test_output_is_sorted_and_deterministic():
    tunnels = [vx("icv2", 200, "n1"), vx("icv1", 100, "n1")]
    a = flows(["n1"], tunnels, {"icv1": 10, "icv2": 11}, {"n1": 5}, PATCH)
    b = flows(["n1"], list(reversed(tunnels)), {"icv2": 11, "icv1": 10}, {"n1": 5}, PATCH)
    assert a == b == sorted(a)
    assert all(line.startswith("table=0,priority=") for line in a)


def test_driver_names_fit_interfaces_and_tunnel_ports_are_shared_per_endpoint_pair():
    dp = OvsDataplane("abcd", "unix:/nonexistent/db.sock", "/nonexistent", tunnel_type="geneve")
    assert dp.supported_tunnels == ("geneve",)
    one, two = vx("abcdv1", 1, "n1"), vx("abcdv2", 2, "n2")
    other = Vxlan("abcdv3", 3, "198.18.0.1", "198.18.0.7", "n1")
    assert dp.tunnel_port(one) == dp.tunnel_port(two)
    assert dp.tunnel_port(one) != dp.tunnel_port(other)
    names = [dp.tunnel_port(one), *dp.patch_names()]
    assert all(n.startswith("abcd") and len(n) <= 15 for n in names), names
    with pytest.raises(DriverError, match="tunnel_type"):
        OvsDataplane("abcd", "unix:/x", "/x", tunnel_type="ipip")


def test_kernel_tunnels_table_joins_each_network_vlan_to_its_veth():
    from intercloud.drivers.dataplane.ovs import kernel_flows as kf

    assert kf.flows([kf.Join("icbe1", 5, 7)], None) == ["table=0,priority=0,actions=drop"]
    got = kf.flows([kf.Join("icbe2", 6, 8), kf.Join("icbe1", 5, 7)], 1)
    assert got == [
        "table=0,priority=0,actions=drop",
        "table=0,priority=10,in_port=1,dl_vlan=5,actions=pop_vlan,output:7",
        "table=0,priority=10,in_port=1,dl_vlan=6,actions=pop_vlan,output:8",
        "table=0,priority=10,in_port=7,actions=push_vlan:0x8100,set_field:4101->vlan_vid,output:1",
        "table=0,priority=10,in_port=8,actions=push_vlan:0x8100,set_field:4102->vlan_vid,output:1",
    ]
    assert kf.text(got).count("\n") == len(got)


def test_ovs_tunnels_setting_is_checked():
    from intercloud import config

    base = {
        "agent": {"name": "A", "admin_token": "t" * 32, "plain_http": True},
        "dataplane": {"driver": "ovs", "tunnels": "kernel", "tunnel_type": "geneve"},
    }
    with pytest.raises(Invalid, match="tunnels") as exc:
        config.parse(base, env={})
    assert exc.value.field == "dataplane.tunnel_type"
    base["dataplane"] = {"driver": "ovs", "tunnels": "userspace"}
    with pytest.raises(Invalid, match="kernel") as exc:
        config.parse(base, env={})
    assert exc.value.field == "dataplane.tunnels"
    base["dataplane"] = {"driver": "ovs", "tunnels": "ovs", "tunnel_type": "geneve"}
    assert config.parse(base, env={}).dataplane.tunnels == "ovs"
