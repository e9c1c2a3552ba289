"""The Linux driver's interface dump read from `ip -d -j link show` (dataplane/linux/netlink):
the same Link fields as the netlink attributes pyroute2 would give."""

import copy
import json

import pytest

from intercloud.drivers.dataplane.linux import tooljson
from intercloud.drivers.dataplane.linux.netlink import Link, _kept, _links, _listed, _Netlink


def _from_json(links: list) -> list:
    """`ip -d -j link show` objects as the driver makes Links of them."""
    return _links([_listed(d) for d in links])


def decode_links(raw: bytes) -> list:
    """The dump decoded as the driver decodes it (its keys cut while decoding)."""
    return list(tooljson.items([raw], _kept))


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


# What `ip -d -j link show` prints besides the keys the driver reads (a bridge port's details
# are ~40 keys like these; a bridge's info_data as many).
NOISE = {"operstate": "UP", "txqlen": 1000, "addr_info": [{"local": "x"}], "promiscuity": 0}
PORT_NOISE = {"state": "forwarding", "priority": 32, "cost": 100, "mcast_flood": True}


def _noisy(dump):
    noisy = copy.deepcopy(dump)
    for d in noisy:
        d.update(NOISE)
        info = d.get("linkinfo")
        if info is None:
            continue
        info["info_data"] = {**(info.get("info_data") or {}), "forward_delay": 1500, "ttl": 9}
        if "info_slave_data" in info:
            info["info_slave_data"].update(PORT_NOISE)
    return noisy


def test_the_dump_is_decoded_with_only_the_keys_the_driver_reads():
    """Dropping the rest while decoding (the full read's peak memory) gives the same Links."""
    raw = json.dumps(_noisy(DUMP)).encode()
    kept = decode_links(raw)
    assert _from_json(kept) == _from_json(DUMP)
    assert _from_json(kept) != _from_json(_noisy(DUMP)[:2])  # the comparison can fail
    text = json.dumps(kept)
    for key in [*NOISE, *PORT_NOISE, "forward_delay", "ttl"]:
        assert f'"{key}"' not in text, key
    vx = next(d for d in kept if d["ifname"] == "icv7")
    assert vx["linkinfo"]["info_slave_data"] == {"isolated": True, "learning": True}
    assert decode_links(b"") == []
    with pytest.raises(tooljson.Unreadable, match="not a JSON list"):
        decode_links(b'{"ifname": "x"}')


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
    printed = json.dumps(shown).encode()

    def read(argv, keep, *, timeout, object_hook=None):
        return [keep(q) for q in tooljson.items([printed])] if argv[0] == "tc" else None

    monkeypatch.setattr(tooljson, "read", read)
    icv7 = Link(7, "icv7", "vxlan", 1450, 0, True, None, {}, {}, 0, False, qdisc="tbf")
    assert nl.root_rates_by_name([icv7]) == {"icv7": 1250000}
