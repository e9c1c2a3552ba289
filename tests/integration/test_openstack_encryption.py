"""OpenStack mode with encrypted links: real Keystone, Neutron, Open vSwitch (br-int, br-cloud)
and a charon per cloud; the ovs data plane's kernel tunnels carry the VMs' traffic inside
IPsec, so the WAN sees only IKE and ESP."""

from __future__ import annotations

import re

import pytest

from tests.integration import traffic
from tests.integration.openstack_fixtures import expand_active, openstack_lab
from tests.integration.test_encryption import psk_of
from tests.integration.traffic import MARKER
from tests.waiting import wait_for


@pytest.fixture(scope="module")
def oslab():
    with openstack_lab(2) as lab:
        yield lab


@pytest.fixture(scope="module")
def ab(oslab):
    """net1 of p1 expanded A -> B (encrypted link), a VM on each side; their IPs."""
    lab = oslab
    lab.add_vm("A", "a1", network="net1")
    exp = expand_active(lab, "net1", ["B"])
    b1 = lab.add_vm("B", "b1", replica_of="A/net1")
    a1 = lab.state().vms["A/a1"]
    ips = a1.ip.split("/")[0], b1.ip.split("/")[0]
    wait_for(lambda: ping(lab, "A/a1", ips[1]), 60, what="a1 -> b1 ping")
    return exp, ips


def ping(lab, target: str, ip: str, count: int = 3, *extra: str) -> bool:
    r = lab.exec(target, ["ping", "-c", str(count), "-i", "0.3", "-W", "2", *extra, ip])
    return r.returncode == 0


def link(lab, cloud: str, peer: str) -> dict:
    return lab.api(cloud, "GET", f"/v1/links/{peer}")


def test_link_is_encrypted_and_the_tunnel_port_is_a_kernel_vxlan(oslab, ab):
    lab = oslab
    lk = link(lab, "A", "B")
    assert lk["encrypted"] is True, lk
    assert lk["status"]["state"] == "up"
    assert lk["status"]["ipsec"]["ike_state"] == "ESTABLISHED", lk["status"]["ipsec"]
    # the network's tunnel port toward B is a kernel VXLAN device (domain/naming.vxlan)
    vni = lab.api("A", "GET", f"/v1/expansions/{ab[0]['id']}", token="p1")["peers"][0]["vni"]
    out = lab.exec("A", ["ip", "-d", "-o", "link", "show", f"icv{vni}"]).stdout
    assert f"vxlan id {vni}" in out, out


def test_df_pings_and_100_mb_of_tcp_cross_intact(oslab, ab):
    lab = oslab
    _, (_, b_ip) = ab
    vm_mtu = link(lab, "A", "B")["mtu_budget"]["vm_mtu"]
    assert ping(lab, "A/a1", b_ip, 3, "-M", "do", "-s", str(vm_mtu - 28))
    r = lab.exec("A/a1", ["ping", "-M", "do", "-s", "1422", "-c", "2", "-W", "2", b_ip])
    mtus = {int(x) for x in re.findall(r"mtu ?= ?(\d+)", r.stdout + r.stderr)}
    assert mtus == {vm_mtu}, (r.stdout, r.stderr)
    sink = traffic.start(lab, "B/b1", traffic.TCP_SINK, "7000")
    sent = traffic.run(lab, "A/a1", traffic.TCP_SOURCE, b_ip, "7000", str(100 * 2**20))
    received = sink.communicate(timeout=180)[0].strip()
    assert sent == received and sent.startswith(str(100 * 2**20)), (sent, received)


def test_wan_sees_only_ike_and_esp(oslab, ab):
    lab = oslab
    _, (_, b_ip) = ab
    with traffic.WanCapture(lab, f"{lab.state_dir}/wan-openstack.pcap") as wan:
        assert ping(lab, "A/a1", b_ip, 5)
        traffic.send_marker(lab, "A/a1", "B/b1", b_ip)
    assert MARKER not in wan.raw(), "cleartext payload crossed the WAN"
    assert len(wan.lines("udp port 4500")) > 20  # ESP in UDP (libipsec)
    # besides IKE/ESP: only ARP and IPv6 neighbour discovery of the veths; no VXLAN, and the
    # agents' federation calls (TLS on 8700) are allowed on the WAN
    others = wan.lines("not (udp port 500 or udp port 4500 or arp or icmp6 or tcp port 8700)")
    assert others == [], others
    assert wan.lines("udp port 4789") == []


def test_wrong_psk_says_authentication_failed_and_the_right_one_restores(oslab, ab):
    lab = oslab
    _, (_, b_ip) = ab
    right = psk_of(lab, "A", "B")
    lab.api("A", "PATCH", "/v1/links/B", {"psk": "definitely-not-the-right-key"})
    try:
        st = wait_for(
            lambda: (
                (lk := link(lab, "A", "B"))["status"]["state"] == "down"
                and "authentication failed" in lk["status"]["reason"]
                and lk
            ),
            timeout=60,
            what="A's link to B to report the authentication failure",
        )
        assert st["status"]["ipsec"]["ike_state"] != "ESTABLISHED"
        # no tunnel port while the link cannot be encrypted: nothing goes in clear
        wait_for(
            lambda: (
                "icv" not in lab.exec("A", ["ip", "-o", "link", "show", "type", "vxlan"]).stdout
            ),
            timeout=30,
            what="A to remove its tunnel port on the unencrypted link",
        )
        assert not ping(lab, "A/a1", b_ip, 2)
        assert lab.health("A") and lab.health("B")
    finally:
        lab.api("A", "PATCH", "/v1/links/B", {"psk": right})
    wait_for(
        lambda: link(lab, "A", "B")["status"]["state"] == "up",
        timeout=90,
        what="the link to come back with the right key",
    )
    wait_for(lambda: ping(lab, "A/a1", b_ip, 2), 120, what="a1 -> b1 again with the right key")


def test_probes_cross_the_kernel_tunnel_port_in_openstack_mode(oslab, ab):
    """The tunnel probes (domain/probe.py) work on this data path: B's agent answers them."""
    lab = oslab

    def answered():
        peer = lab.api("A", "GET", f"/v1/expansions/{ab[0]['id']}", token="p1")["peers"][0]
        tunnel = peer.get("tunnel") or {}
        return tunnel if tunnel.get("answered") and tunnel.get("rtt_ms") else None

    tunnel = wait_for(answered, timeout=20, what="a probe through the tunnel to B answered")
    assert 0 < tunnel["rtt_ms"] < 1000 and 0 <= tunnel["loss"] <= 1, tunnel
    probes = lab.api("A", "GET", "/v1/status")["probes"]
    assert probes["available"] is True, probes
