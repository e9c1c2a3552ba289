"""The Linux gateway driver (drivers/gateway/linux.py) in a real namespace, run by a process of
its own inside it (the address lives as long as that process): take-over answers ARP for the
cloud's address at the underlay interface, tunnel ports come up and go down with the role;
an address configured by hand, or arp_ignore, is refused."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.integration.namespaces import ip

CLOUD = "198.18.211.1"
PROGRAM = textwrap.dedent(
    """
    import sys
    from intercloud.drivers.gateway.linux import LinuxGateway
    from intercloud.errors import DriverError
    g = LinuxGateway("ic", "198.18.211.1/24", "u0")
    try:
        g.take_over()
    except DriverError as exc:
        print("refused:", exc.message, flush=True)
        sys.exit(3)
    print("holds", g.holds_address(), flush=True)
    sys.stdin.readline()  # step down when told
    g.step_down()
    print("holds", g.holds_address(), flush=True)
    sys.stdin.readline()
    """
)


def _pair(namespaces):
    gw, nb = namespaces("hagw"), namespaces("hanb")
    namespaces.veth(gw, "u0", nb, "u0")
    for ns, host in ((gw, "198.18.211.11"), (nb, "198.18.211.2")):
        ip("-n", ns, "addr", "add", f"{host}/24", "dev", "u0")
        ip("-n", ns, "link", "set", "u0", "up")
    ip("-n", gw, "link", "add", "icv42", "type", "vxlan", "id", "42", "local", CLOUD,
       "remote", "198.18.211.2", "dstport", "4789")  # fmt: skip
    return gw, nb


def _start(ns: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", PROGRAM],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _state(ns: str, dev: str) -> str:
    return ip("-n", ns, "-br", "link", "show", dev).stdout.split()[1]


def test_take_over_and_step_down(namespaces):
    gw, nb = _pair(namespaces)
    proc = _start(gw)
    try:
        assert proc.stdout.readline().strip() == "holds True"
        assert _state(gw, "icv42") != "DOWN"  # tunnel ports up with the role
        ip("netns", "exec", nb, "ping", "-c1", "-W1", CLOUD)  # ARP answered on u0
        gw_mac = ip("-n", gw, "-br", "link", "show", "u0").stdout.split()[2]
        assert gw_mac in ip("-n", nb, "neigh", "show", CLOUD).stdout
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "holds False"
        assert _state(gw, "icv42") == "DOWN"
        assert "icha" not in ip("-n", gw, "-br", "link").stdout  # the device went with it
    finally:
        proc.kill()
        proc.communicate()  # and closes its pipes


def test_an_address_set_by_hand_is_refused(namespaces):
    gw, _ = _pair(namespaces)
    ip("-n", gw, "addr", "add", f"{CLOUD}/24", "dev", "u0")
    proc = _start(gw)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 3 and "configured on this host outside the agent" in out


def test_arp_ignore_is_refused(namespaces):
    gw, _ = _pair(namespaces)
    ip("netns", "exec", gw, "sysctl", "-qw", "net.ipv4.conf.u0.arp_ignore=1")
    proc = _start(gw)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 3 and "arp_ignore 1" in out
    assert "icha" not in ip("-n", gw, "-br", "link").stdout
