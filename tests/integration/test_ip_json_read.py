"""The Linux driver's dump of every interface, read from `ip -d -j link show` as it is printed
(drivers/dataplane/linux/tooljson.py), against the real kernel: for ~900 interfaces (about a
megabyte of JSON, read in many pieces) it gives the same Links as pyroute2's own decoding of
the kernel's messages, and `tc -j` our rate limits as pyroute2 reads them."""

from __future__ import annotations

import subprocess

import pytest

from intercloud.drivers.dataplane.linux.netlink import _Netlink, _parse

pytestmark = pytest.mark.integration

N = 400  # tenant bridges, each with one tunnel port


def build(ns: str, other: str) -> None:
    lines = []
    for i in range(N):
        lines += [
            f"link add tn{i} type bridge",
            f"link add icv{i} type vxlan id {i + 1} local 198.18.0.1"
            f" remote 198.18.0.{2 + i % 3} dstport 4789" + (" nolearning" if i % 2 else ""),
            f"link set icv{i} master tn{i}",
        ]
        if i % 3 == 0:
            lines.append(f"link set dev icv{i} type bridge_slave isolated on")
        if i % 5 == 0:
            lines.append(f"link set dev icv{i} alias intercloud:mtu=1400 mtu 1400")
        if i % 7:
            lines += [f"link set tn{i} up", f"link set icv{i} up"]
    lines += [
        "link add icpa type veth peer name icqa",  # both ends here: peers by name
        "link set icpa master tn1",
        f"link add icpb type veth peer name icqb netns {other}",  # the peer elsewhere
        "link add ifb0 type ifb",  # a kind the driver does not make
    ]
    subprocess.run(["ip", "-n", ns, "-batch", "-"], input="\n".join(lines) + "\n", text=True,
                   check=True)  # fmt: skip
    subprocess.run(
        ["tc", "-n", ns, "qdisc", "replace", "dev", "icv3", "root", "handle", "1c1:", "tbf",
         "rate", "10mbit", "burst", "64kb", "latency", "50ms"],
        check=True,
    )  # fmt: skip


def as_read(link):
    """The fields a Link from `ip -j` carries (pyroute2's data and slave hold every attribute)."""
    vxlan = {k: link.data.get(k) for k in ("IFLA_VXLAN_ID", "IFLA_VXLAN_LOCAL", "IFLA_VXLAN_PORT")}
    if link.kind == "vxlan":
        vxlan["IFLA_VXLAN_LEARNING"] = int(bool(link.data.get("IFLA_VXLAN_LEARNING")))
        vxlan["IFLA_VXLAN_GROUP"] = link.data.get("IFLA_VXLAN_GROUP")
    isolated = link.slave.get("IFLA_BRPORT_ISOLATED")
    kind = link.kind if link.kind in ("bridge", "vxlan", "veth") else "other"
    return (
        (link.index, kind, link.mtu, link.master, link.up, link.alias),
        (link.peer, link.peer_elsewhere, link.qdisc),
        vxlan if link.kind == "vxlan" else None,
        bool(isolated) if link.master else None,
    )


def test_the_streamed_dump_gives_the_links_pyroute2_decodes(namespaces):
    ns, other = namespaces("ipjson"), namespaces("ipjson-peer")
    build(ns, other)
    nl = _Netlink(ns)
    try:
        streamed = {link.name: link for link in nl.links()}
        decoded = {link.name: link for link in (_parse(m) for m in nl.ipr.get_links())}
        assert len(streamed) == 2 * N + 5  # lo, two veth ends, the ifb
        assert streamed.keys() == decoded.keys()
        for name, link in decoded.items():
            assert as_read(streamed[name]) == as_read(link), name
        # the cases the comparison is there for
        assert streamed["icv0"].slave["IFLA_BRPORT_ISOLATED"] == 1
        assert streamed["icv1"].slave["IFLA_BRPORT_ISOLATED"] == 0
        assert streamed["icv1"].data["IFLA_VXLAN_LEARNING"] == 0
        assert streamed["icv5"].marked_mtu == 1400
        assert streamed["icpa"].peer == streamed["icqa"].index
        assert streamed["icpb"].peer_elsewhere
        assert not streamed["icv7"].up and streamed["icv8"].up
        # one kind: only those printed, masters still by index
        vxlans = nl.links("vxlan", {n: link.index for n, link in streamed.items()})
        assert sorted(link.name for link in vxlans) == sorted(f"icv{i}" for i in range(N))
        assert all(link.master == streamed[f"tn{link.name[3:]}"].index for link in vxlans)
        # our rate limit, from tc's JSON as from pyroute2
        rates = nl.root_rates_by_name(list(streamed.values()))
        assert rates == {"icv3": 1_250_000}
        assert nl.root_rates(streamed["icv3"].index) == {streamed["icv3"].index: 1_250_000}
    finally:
        nl.close()


def one_page_mappings() -> int:
    """Anonymous mappings of one page in this process (a small buffer shrunk in place)."""
    count = 0
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            count += len(fields) < 6 and end - start == 4096
    return count


def test_lookups_leave_no_stray_answer_behind(namespaces):
    """pyroute2 files a lookup's late acknowledgement under no request and keeps it, each one
    holding a page (netlink._drop_strays): the driver's lookups drop them."""
    ns = namespaces("lookup")
    subprocess.run(["ip", "-n", ns, "link", "add", "tn0", "type", "bridge"], check=True)
    nl = _Netlink(ns)
    try:
        kept = nl.ipr.asyncore.msg_queue.root
        before = one_page_mappings()
        for _ in range(200):
            assert nl.link("tn0").kind == "bridge"
        assert kept.qsize() == 0
        assert one_page_mappings() - before < 50  # 200 without the drop
        for _ in range(10):  # pyroute2 alone keeps them (what the drop is for)
            nl.ipr.link("get", ifname="tn0")
        assert kept.qsize() == 10
    finally:
        nl.close()
