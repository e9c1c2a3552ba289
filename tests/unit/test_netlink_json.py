"""The Linux driver's interface dump read from `ip -d -j link show` (dataplane/linux/netlink):
the same Link fields as the netlink attributes pyroute2 would give."""

from intercloud.drivers.dataplane.linux.netlink import _from_json, _Netlink

DUMP = [
    {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP"], "mtu": 65536},
    {
        "ifindex": 4,
        "ifname": "icbe1",
        "flags": ["BROADCAST", "UP"],
        "mtu": 1500,
        "linkinfo": {"info_kind": "bridge", "info_data": {"stp_state": 0}},
    },
    {
        "ifindex": 6,
        "ifname": "icv7",
        "flags": ["BROADCAST", "MULTICAST"],
        "mtu": 1500,
        "master": "icbe1",
        "ifalias": "intercloud:mtu=1500",
        "linkinfo": {
            "info_kind": "vxlan",
            "info_data": {
                "id": 7,
                "remote": "198.18.2.2",
                "local": "198.18.1.2",
                "port": 4789,
                "learning": True,
                "df": "unset",
            },
            "info_slave_kind": "bridge",
            "info_slave_data": {"isolated": True, "learning": True},
        },
    },  # fmt: skip
    {
        "ifindex": 8,
        "link": "icqe1",
        "ifname": "icpe1",
        "flags": ["UP"],
        "mtu": 1500,
        "master": "icbe1",
        "linkinfo": {"info_kind": "veth"},
    },  # fmt: skip
    {
        "ifindex": 9,
        "link": "icpe1",
        "ifname": "icqe1",
        "flags": [],
        "mtu": 1500,
        "linkinfo": {"info_kind": "veth"},
    },  # fmt: skip
    {
        "ifindex": 10,
        "link_index": 3,
        "link_netnsid": 0,
        "ifname": "vm0",
        "flags": [],
        "mtu": 1500,
        "linkinfo": {"info_kind": "veth"},
    },  # fmt: skip
]


def test_links_from_ip_json():
    links = {link.name: link for link in _from_json(DUMP)}
    vx = links["icv7"]
    assert (vx.index, vx.kind, vx.master, vx.up, vx.marked_mtu) == (6, "vxlan", 4, False, 1500)
    assert vx.data == {
        "IFLA_VXLAN_ID": 7,
        "IFLA_VXLAN_LOCAL": "198.18.1.2",
        "IFLA_VXLAN_GROUP": "198.18.2.2",
        "IFLA_VXLAN_PORT": 4789,
        "IFLA_VXLAN_LEARNING": 1,
        "IFLA_VXLAN_DF": 0,
    }
    assert vx.slave == {"IFLA_BRPORT_ISOLATED": 1}
    br = links["icbe1"]
    assert (br.kind, br.master, br.up, br.marked_mtu, br.slave) == ("bridge", 0, True, None, {})
    # a veth's peer by name here, by index (and elsewhere) in another namespace
    assert (links["icpe1"].peer, links["icpe1"].peer_elsewhere) == (9, False)
    assert (links["icqe1"].peer, links["icqe1"].master) == (8, 0)
    assert (links["vm0"].peer, links["vm0"].peer_elsewhere) == (3, True)
    assert links["lo"].kind is None and links["lo"].data == {}


def test_our_rate_limits_are_read_from_tc_json(monkeypatch):
    """Only root tbf qdiscs with our handle count; the rate is in bytes/s."""
    nl = _Netlink(ipr=object())
    shown = [
        {
            "kind": "tbf",
            "handle": "1c1:",
            "dev": "icv7",
            "root": True,
            "options": {"rate": 1250000},
        },
        {"kind": "tbf", "handle": "1:", "dev": "eth0", "root": True, "options": {"rate": 99}},
        {"kind": "tbf", "handle": "1c1:", "dev": "icv8", "parent": "1:", "options": {"rate": 5}},
        {"kind": "noqueue", "handle": "0:", "dev": "lo", "root": True, "options": {}},
    ]
    monkeypatch.setattr(nl, "_json", lambda argv: shown if argv[0] == "tc" else None)
    assert nl.root_rates_by_name([]) == {"icv7": 1250000}
