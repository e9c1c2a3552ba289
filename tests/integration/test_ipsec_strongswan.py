"""strongSwan over VICI against real charons (kernel-libipsec), one per network namespace.

Needs root. Each test makes its own namespaces (fixture `namespaces`: `ictest-<role>-<uuid8>`)
joined by veths (underlay 198.18.0.0/15; the NAT'd side in 198.19.0.0/16, tenant 10.77.0.0/24 on
VXLAN); the fixture stops every charon in a finally, then `namespaces` deletes every namespace
with what still runs in it, even on failure.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from intercloud.drivers.ipsec.base import ConnectionSpec
from intercloud.drivers.ipsec.strongswan import StrongswanIpsec
from intercloud.lab.charon import Charon
from tests.integration.helpers import capture
from tests.integration.namespaces import Namespaces
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

PSK = "correct horse battery staple"


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=60)


class Env:
    """Namespaces, charons and drivers of one test; `cleanup` removes the charons and drivers
    (the namespaces go after, with the fixture `namespaces`)."""

    def __init__(self, workdir: Path, namespaces: Namespaces) -> None:
        self.workdir = workdir
        self.namespaces = namespaces
        self.charons: list[Charon] = []
        self.drivers: list[StrongswanIpsec] = []

    def ns(self, role: str) -> str:
        return self.namespaces(role)

    def veth(self, ns1: str, if1: str, addr1: str, ns2: str, if2: str, addr2: str) -> None:
        self.namespaces.veth(ns1, if1, ns2, if2)
        for ns, dev, addr in ((ns1, if1, addr1), (ns2, if2, addr2)):
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")

    def charon(self, ns: str) -> tuple[Charon, StrongswanIpsec]:
        charon = Charon(ns, self.workdir / ns)
        self.charons.append(charon)
        charon.start()
        driver = StrongswanIpsec(charon.socket_path)
        self.drivers.append(driver)
        return charon, driver

    def vxlan(self, ns: str, local: str, remote: str, addr: str) -> None:
        sh(
            "ip", "-n", ns, "link", "add", "icvx42", "type", "vxlan", "id", "42",
            "local", local, "remote", remote, "dstport", "4789",
        )  # fmt: skip
        sh("ip", "-n", ns, "addr", "add", addr, "dev", "icvx42")
        sh("ip", "-n", ns, "link", "set", "icvx42", "up")

    def cleanup(self) -> None:
        """Everything, each step even if an earlier one failed."""
        for driver in self.drivers:
            with contextlib.suppress(Exception):
                driver.close()
        for charon in self.charons:
            with contextlib.suppress(Exception):
                charon.stop()


@pytest.fixture
def env(tmp_path, namespaces):
    e = Env(tmp_path, namespaces)
    try:
        yield e
    finally:
        e.cleanup()


def ping(ns: str, dst: str, count: int = 5, interval: float = 0.2) -> tuple[int, int]:
    out = sh(
        "ip", "netns", "exec", ns, "ping", "-n", "-q", "-c", str(count), "-i", str(interval),
        "-W", "1", dst, check=False,
    ).stdout  # fmt: skip
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert m, out
    return int(m.group(1)), int(m.group(2))


def pair(env: Env, **kw) -> dict:
    """A (198.18.0.1, initiator) and B (198.18.0.2, responder), a charon each, specs loaded."""
    a, b = env.ns("a"), env.ns("b")
    env.veth(a, "icva", "198.18.0.1/24", b, "icvb", "198.18.0.2/24")
    _, da = env.charon(a)
    _, db = env.charon(b)
    sa = ConnectionSpec("link-B", "198.18.0.1", "198.18.0.2", "cloud-a", "cloud-b", PSK, **kw)
    sb = replace(sa, name="link-A", local="198.18.0.2", remote="198.18.0.1", initiator=False)
    sb = replace(sb, local_id="cloud-b", remote_id="cloud-a", psk=kw.get("psk", PSK))
    return {"a": a, "b": b, "da": da, "db": db, "sa": sa, "sb": sb}


def both_up(p: dict) -> bool:
    return p["da"].connections()["link-B"].up and p["db"].connections()["link-A"].up


def establish(p: dict) -> float:
    start = time.monotonic()
    assert p["db"].ensure_connection(p["sb"]) is True  # the responder first, then the initiator
    assert p["da"].ensure_connection(p["sa"]) is True
    wait_for(lambda: both_up(p), timeout=10, interval=0.05, what="both sides up")
    return time.monotonic() - start


def vxlan_pair(env: Env, p: dict, a_remote: str = "198.18.0.2", b_remote: str = "198.18.0.1"):
    env.vxlan(p["a"], p["sa"].local, a_remote, "10.77.0.1/24")
    env.vxlan(p["b"], p["sb"].local, b_remote, "10.77.0.2/24")


def ports(lines: list[str]) -> list[tuple[str, str]]:
    """(src port, dst port) of every IPv4 UDP/TCP line; ('icmp','icmp') for ICMP."""
    out = []
    for line in lines:
        if "ICMP" in line:
            out.append(("icmp", "icmp"))
            continue
        m = re.search(r"\d+\.\d+\.\d+\.\d+\.(\d+) > \d+\.\d+\.\d+\.\d+\.(\d+):", line)
        if m:
            out.append((m.group(1), m.group(2)))
    return out


def test_up_encrypted_and_counted(env):
    p = pair(env)
    took = establish(p)
    print(f"time to ESTABLISHED/INSTALLED on both sides: {took * 1000:.0f} ms")
    assert p["da"].backend() == "kernel-libipsec" and p["db"].backend() == "kernel-libipsec"
    ta, tb = p["da"].connections()["link-B"], p["db"].connections()["link-A"]
    for st in (ta, tb):
        assert st.ike_state == "ESTABLISHED" and st.last_error == ""
        assert [c.mode for c in st.children] == ["TUNNEL"] and st.children[0].encap
        assert st.nat_detected is False  # libipsec's faked NAT-D is not reported as NAT
    assert p["da"].ensure_connection(p["sa"]) is False  # idempotent
    assert p["db"].ensure_connection(p["sb"]) is False
    vxlan_pair(env, p)
    with capture(p["a"], "icva", "ip") as cap:
        assert ping(p["a"], "10.77.0.2", count=5) == (5, 5)
        assert ping(p["a"], "198.18.0.2", count=2) == (2, 2)  # underlay ping: encrypted too
    seen = ports(cap.lines)
    assert seen and all(sp in ("500", "4500") and dp in ("500", "4500") for sp, dp in seen), seen
    assert any("ESP" in line for line in cap.lines)
    assert ("icmp", "icmp") not in seen and "4789" not in {p for pair in seen for p in pair}
    after = p["da"].connections()["link-B"].children[0]
    assert after.packets_out >= 7 and after.packets_in >= 7
    assert after.bytes_out > ta.children[0].bytes_out and after.bytes_in > 0


def test_wrong_psk_reports_auth_failure_then_recovers(env):
    p = pair(env)
    p["sb"] = replace(p["sb"], psk="not the right key")
    assert p["db"].ensure_connection(p["sb"]) is True
    assert p["da"].ensure_connection(p["sa"]) is True
    vxlan_pair(env, p)

    def errors() -> tuple[str, str]:
        ea = p["da"].connections()["link-B"].last_error
        eb = p["db"].connections()["link-A"].last_error
        return (ea, eb) if "authentication failed" in ea and "authentication failed" in eb else ()

    ea, eb = wait_for(errors, timeout=10, what="authentication failed on both sides")
    print(f"initiator: {ea}\nresponder: {eb}")
    assert PSK not in ea + eb and "not the right key" not in ea + eb
    for st in (p["da"].connections()["link-B"], p["db"].connections()["link-A"]):
        assert st.ike_state != "ESTABLISHED" and not st.up
    assert ping(p["a"], "10.77.0.2", count=3)[1] == 0  # dropped by the trap, never in clear
    assert p["da"].ensure_connection(p["sa"]) is True  # re-initiates; fails again, no crash
    time.sleep(1)  # a window in which it must stay down: it is the check
    assert not p["da"].connections()["link-B"].up
    p["sb"] = replace(p["sb"], psk=PSK)  # fix it
    assert p["db"].ensure_connection(p["sb"]) is True
    assert p["da"].ensure_connection(p["sa"]) is True
    wait_for(lambda: both_up(p), timeout=10, interval=0.1, what="up after fixing the PSK")
    assert p["da"].connections()["link-B"].last_error == ""
    assert p["db"].connections()["link-A"].last_error == ""
    # the failed pings left 10.77.0.2 FAILED in A's ARP cache: the kernel answers "host
    # unreachable" itself until its next ARP probe (< 1 s), nothing to do with IPsec
    wait_for(lambda: ping(p["a"], "10.77.0.2", count=1)[1], timeout=5, what="ARP retry")
    assert ping(p["a"], "10.77.0.2", count=3) == (3, 3)


def test_rekey_under_traffic_loses_nothing(env):
    p = pair(env, esp_lifetime=5)
    establish(p)
    vxlan_pair(env, p)
    assert ping(p["a"], "10.77.0.2", count=2) == (2, 2)
    ids: set[int] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            ids.update(c.unique_id for c in p["da"].connections()["link-B"].children)
            time.sleep(0.2)  # the sampler's pace

    first = {c.unique_id for c in p["da"].connections()["link-B"].children}
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        sent, received = ping(p["a"], "10.77.0.2", count=300, interval=0.05)  # 20 pps, 15 s
    finally:
        done.set()
        watcher.join()
    last = {c.unique_id for c in p["da"].connections()["link-B"].children}
    print(f"CHILD_SA ids seen: {sorted(ids)}; {sent} sent, {received} received")
    assert (sent, received) == (300, 300)
    assert len(ids) >= 3 and not (first & last)  # rekeyed (at least twice in 15 s)
    # a snapshot can fall inside a rekey (old CHILD_SA going, new one not yet INSTALLED)
    wait_for(lambda: both_up(p), timeout=10, interval=0.1, what="both sides up after rekeys")


def test_nat_traversal(env):
    a, r, c = env.ns("a"), env.ns("nat"), env.ns("c")
    env.veth(a, "icva", "198.18.3.1/24", r, "icra", "198.18.3.2/24")
    env.veth(r, "icrc", "198.19.3.1/24", c, "icvc", "198.19.3.2/24")
    sh("ip", "-n", c, "route", "add", "default", "via", "198.19.3.1")
    sh("ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    rules = (
        "table ip nat {\n chain post {\n  type nat hook postrouting priority srcnat;\n"
        '  ip saddr 198.19.0.0/16 oifname "icra" masquerade\n }\n}\n'
    )
    subprocess.run(["ip", "netns", "exec", r, "nft", "-f", "-"], input=rules, text=True, check=True)
    _, da = env.charon(a)
    _, dc = env.charon(c)
    # C (behind NAT) initiates to A's address; A knows C by its NAT address and, for the
    # traffic selectors, by its private address.
    sc = ConnectionSpec("link-A", "198.19.3.2", "198.18.3.1", "cloud-c", "cloud-a", PSK)
    sa = ConnectionSpec(
        "link-C", "198.18.3.1", "198.18.3.2", "cloud-a", "cloud-c", PSK,
        remote_ts="198.19.3.2", initiator=False,
    )  # fmt: skip
    start = time.monotonic()
    assert da.ensure_connection(sa) is True
    assert dc.ensure_connection(sc) is True
    wait_for(
        lambda: da.connections()["link-C"].up and dc.connections()["link-A"].up,
        timeout=10, interval=0.05, what="NAT'd tunnel up",
    )  # fmt: skip
    print(f"time to ESTABLISHED through NAT: {(time.monotonic() - start) * 1000:.0f} ms")
    for st in (da.connections()["link-C"], dc.connections()["link-A"]):
        assert st.nat_detected is True
        assert st.children[0].encap and st.children[0].mode == "TUNNEL"
    # A's VXLAN remote is C's private address: the inner packets carry the TS addresses.
    env.vxlan(a, "198.18.3.1", "198.19.3.2", "10.77.0.1/24")
    env.vxlan(c, "198.19.3.2", "198.18.3.1", "10.77.0.2/24")
    with capture(r, "icra", "ip") as cap:
        assert ping(a, "10.77.0.2", count=5) == (5, 5)
        assert ping(c, "10.77.0.1", count=3) == (3, 3)
    seen = ports(cap.lines)
    assert seen and all(dp in ("500", "4500") or sp in ("500", "4500") for sp, dp in seen)
    assert ("icmp", "icmp") not in seen and "4789" not in {p for pair in seen for p in pair}


def test_remove_and_replace(env):
    p = pair(env)
    establish(p)
    # a changed spec replaces the config and re-establishes on the new one
    p["sa"] = replace(p["sa"], esp_lifetime=1800)
    p["sb"] = replace(p["sb"], esp_lifetime=1800)
    assert p["db"].ensure_connection(p["sb"]) is True
    assert p["da"].ensure_connection(p["sa"]) is True
    wait_for(lambda: both_up(p), timeout=10, interval=0.1, what="up after replacing")
    assert p["da"].ensure_connection(p["sa"]) is False

    def listed(driver: StrongswanIpsec, name: str) -> list:
        return driver._call("list-conns", lambda s: list(s.list_conns({"conn": name})))

    conn = listed(p["da"], "link-B")[0]["link-B"]
    assert conn["children"]["link-B"]["rekey_time"] == b"1800"
    for ns in (p["a"], p["b"]):
        assert "ipsec0" in sh("ip", "-n", ns, "route", "show", "table", "220").stdout
    assert p["da"].remove_connection("link-B") is True
    assert p["db"].remove_connection("link-A") is True
    for ns, d, name in ((p["a"], p["da"], "link-B"), (p["b"], p["db"], "link-A")):
        assert name not in d.connections() and listed(d, name) == []
        assert d._call("list-sas", lambda s: list(s.list_sas())) == []
        assert sh("ip", "-n", ns, "route", "show", "table", "220").stdout.strip() == ""
        assert d.remove_connection(name) is False
    assert ping(p["a"], "198.18.0.2", count=2) == (2, 2)  # plain underlay again
