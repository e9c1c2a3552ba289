"""The cleartext guard's rules in a real kernel: a VXLAN device's packets to a guarded peer are
dropped when no charon route catches them first, while the peer stays reachable otherwise.
(With real charons and agents: test_encryption.py::test_a_charon_killed_leaks_no_tunnel_traffic.)"""

from __future__ import annotations

import json
import subprocess

import pytest

from intercloud.drivers.ipsec.cleartext_guard import GUARD_PRIO, CleartextGuard
from tests.integration.namespaces import ip

A, B = "10.251.0.1", "10.251.0.2"


@pytest.fixture
def pair(namespaces):
    """Namespaces a and b on one veth; a has a VXLAN device to b over it."""
    a, b = namespaces("guard-a"), namespaces("guard-b")
    namespaces.veth(a, "wan", b, "wan")
    for ns, addr in ((a, A), (b, B)):
        ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "wan")
        ip("-n", ns, "link", "set", "wan", "up")
    ip("-n", a, "link", "add", "vx", "type", "vxlan", "id", "42", "remote", B, "local", A,
       "dstport", "4789")  # fmt: skip
    ip("-n", a, "addr", "add", "192.168.91.1/24", "dev", "vx")
    ip("-n", a, "link", "set", "vx", "up")
    return a, b


def vxlan_reaching_b(a: str, b: str) -> int:
    """VXLAN packets b receives while a pings through the VXLAN device (nothing answers)."""
    cap = subprocess.Popen(
        ["ip", "netns", "exec", b, "tcpdump", "-n", "-l", "-i", "wan", "udp port 4789"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert cap.stderr is not None
    while "listening on" not in cap.stderr.readline():
        pass
    subprocess.run(
        ["ip", "netns", "exec", a, "ping", "-c", "3", "-i", "0.2", "-W", "1", "192.168.91.2"],
        capture_output=True,
    )
    cap.terminate()
    out, _ = cap.communicate(timeout=10)
    return len([line for line in out.splitlines() if "VXLAN" in line])


def underlay_ping(a: str) -> bool:
    cmd = ["ip", "netns", "exec", a, "ping", "-c", "1", "-W", "2", B]
    return subprocess.run(cmd, capture_output=True).returncode == 0


def test_guarded_peer_gets_no_tunnel_traffic_but_stays_reachable(pair):
    a, b = pair
    assert vxlan_reaching_b(a, b) > 0  # the control: unguarded, VXLAN leaves in clear
    guard = CleartextGuard(4789, netns=a)
    assert guard.ensure({B}) is True
    assert guard.rules() == {(B, 4789)}
    assert vxlan_reaching_b(a, b) == 0
    assert underlay_ping(a)  # only UDP to the tunnel port is dropped
    assert guard.ensure({B}) is False  # idempotent
    assert guard.ensure(set()) is True
    assert guard.rules() == set()
    assert vxlan_reaching_b(a, b) > 0


def test_only_its_own_rules_are_touched_and_a_bad_address_spares_the_others(namespaces):
    ns = namespaces("guard")
    # An operator's rule at the same priority, and a blackhole of another port: not ours.
    ip("-n", ns, "rule", "add", "priority", str(GUARD_PRIO), "to", "10.9.9.9", "lookup", "main")
    ip("-n", ns, "rule", "add", "priority", str(GUARD_PRIO), "to", B, "ipproto", "udp",
       "dport", "53", "blackhole")  # fmt: skip
    guard = CleartextGuard(4789, netns=ns)
    assert guard.ensure({A, "2001:db8::2", "not-an-address; reboot"}) is True
    assert guard.rules() == {(A, 4789), ("2001:db8::2", 4789)}
    v6 = json.loads(ip("-n", ns, "-6", "-j", "rule", "show").stdout)
    assert any(r.get("dst") == "2001:db8::2" and r.get("action") == "blackhole" for r in v6)
    assert CleartextGuard(4790, netns=ns).ensure({A}) is True  # the port changed: replaced
    assert CleartextGuard(4790, netns=ns).rules() == {(A, 4790)}
    assert CleartextGuard(4790, netns=ns).ensure(set()) is True
    left = json.loads(ip("-n", ns, "-j", "rule", "show").stdout)
    mine = [r for r in left if r.get("priority") == GUARD_PRIO]
    assert {r.get("dst") for r in mine} == {"10.9.9.9", B}, mine  # the others stay
