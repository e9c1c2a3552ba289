"""The Linux gateway driver (drivers/gateway/linux.py) in a real namespace, run by a process of
its own inside it (the address lives as long as that process): take-over answers ARP for the
cloud's address at the underlay interface, tunnel ports come up and go down with the role;
an address configured by hand, or arp_ignore, is refused."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.integration.namespaces import ip
from tests.waiting import wait_for

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
        # tunnel ports stay down: the reconciler's pass brings them up (an encrypted link's
        # once its SA is up, so that nothing leaves in the clear before)
        assert _state(gw, "icv42") == "DOWN"
        ip("-n", gw, "link", "set", "icv42", "up")
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


# ---- the remote MACs: learned on the tunnel port, announced on the tenant side only

REMOTE = "02:00:00:00:00:42"  # a VM of the peer cloud (here: the peer's VXLAN device)
LOCAL = "02:00:00:00:00:11"  # a VM on the tenant segment
COMMANDS = textwrap.dedent(
    """
    import json, sys
    from intercloud.drivers.gateway.linux import LinuxGateway
    g = LinuxGateway("ic", "198.18.211.1/24", "u0")
    for line in sys.stdin:
        verb, _, arg = line.strip().partition(" ")
        if verb == "take":
            g.take_over()
            answer = True
        elif verb == "macs":
            answer = g.remote_macs()
        elif verb == "announce":
            answer = g.announce(json.loads(arg))
        print(json.dumps(answer), flush=True)
    """
)
# every RARP frame seen on a device (also those it sends), bare or inside VXLAN (IPv4 without
# options, UDP 4789), until stdin closes: [src, opcode]
CAPTURE = textwrap.dedent(
    """
    import json, select, socket, sys
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((sys.argv[1], 0))
    print("ready", flush=True)
    seen = []
    while True:
        ready, _, _ = select.select([s, sys.stdin], [], [], 5)
        if sys.stdin in ready or not ready:
            break
        frame = s.recv(2048)
        if frame[12:14] == b"\\x08\\x00" and frame[23] == 17 and frame[36:38] == b"\\x12\\xb5":
            frame = frame[50:]  # the frame inside the VXLAN packet
        if frame[12:14] == b"\\x80\\x35":
            seen.append([frame[6:12].hex(":"), frame[20:22].hex()])
    print(json.dumps(seen), flush=True)
    """
)


# one frame from a MAC out of a device (argv: device, MAC)
SEND = textwrap.dedent(
    """
    import socket, sys
    mac = bytes.fromhex(sys.argv[2].replace(":", ""))
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((sys.argv[1], 0))
        s.send(b"\\xff" * 6 + mac + b"\\x88\\xb5" + b"\\x00" * 46)
    """
)


def _pings(ns: str, address: str) -> bool:
    return ip("netns", "exec", ns, "ping", "-c1", "-W1", address, check=False).returncode == 0


def _fdb(ns: str) -> str:
    return subprocess.run(
        ["bridge", "-n", ns, "fdb", "show", "br", "icb1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _tenant_segment(namespaces):
    """gw: the bridge icb1 with the tunnel port icv42 (VNI 42 to nb) and the tenant port t0;
    ten: a VM on the tenant segment (t0, LOCAL); nb: the peer, its VXLAN device with REMOTE."""
    gw, nb = _pair(namespaces)
    ten = namespaces("hatn")
    for ns in (gw, nb, ten):  # no IPv6 chatter (router solicitations, MLD) teaching bridges
        ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
    ip("-n", gw, "link", "add", "icb1", "type", "bridge")
    ip("-n", gw, "link", "set", "icv42", "master", "icb1")
    namespaces.veth(gw, "t0", ten, "t0")
    ip("-n", gw, "link", "set", "t0", "master", "icb1", "up")
    ip("-n", gw, "link", "set", "icb1", "up")
    ip("-n", ten, "link", "set", "t0", "address", LOCAL, "up")
    ip("-n", ten, "addr", "add", "10.9.0.1/24", "dev", "t0")
    ip("-n", nb, "link", "add", "vx42", "type", "vxlan", "id", "42", "local", "198.18.211.2",
       "remote", CLOUD, "dstport", "4789")  # fmt: skip
    ip("-n", nb, "link", "set", "vx42", "address", REMOTE, "up")
    ip("-n", nb, "addr", "add", "10.9.0.2/24", "dev", "vx42")
    return gw, nb, ten


def _ask(proc: subprocess.Popen, line: str) -> object:
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def _capture(ns: str, dev: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", CAPTURE, dev],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_remote_macs_are_learned_on_the_tunnel_port_and_announced_on_the_tenant_side(
    namespaces,
):
    gw, nb, ten = _tenant_segment(namespaces)
    proc = subprocess.Popen(
        ["ip", "netns", "exec", gw, sys.executable, "-c", COMMANDS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    captures = []
    try:
        assert _ask(proc, "take") is True
        ip("-n", gw, "link", "set", "icv42", "up")  # what the agent's pass does once active
        # a frame of the remote VM through the tunnel (and the local VM's answer)
        # (again until answered: a loaded host may drop a frame)
        wait_for(lambda: _pings(nb, "10.9.0.1"), 10, 0.1, "the local VM to answer")
        assert f"{LOCAL} dev t0" in _fdb(gw)  # learned too, but on the tenant side
        assert _ask(proc, "macs") == {"icb1": [REMOTE]}

        # as a standby's bridge learns it from the active's floods: REMOTE behind t0
        def moved() -> bool:
            ip("netns", "exec", ten, sys.executable, "-c", SEND, "t0", REMOTE)
            return f"{REMOTE} dev t0" in _fdb(gw)

        wait_for(moved, 10, 0.1, "REMOTE behind t0")
        assert _ask(proc, "macs") == {}

        # the peer's VXLAN device drops frames from its own MAC: watch its underlay instead
        captures = [_capture(ten, "t0"), _capture(nb, "u0")]
        macs = {"icb1": [REMOTE], "icb7": ["02:00:00:00:00:77"]}  # icb7: not on this host
        assert _ask(proc, f"announce {json.dumps(macs)}") == ["icb1"]
        seen = []
        for capture in captures:
            out, _ = capture.communicate("\n", timeout=30)
            seen.append(json.loads(out))
        tenant, tunnel = seen
        # at 0, 0.2 and 1.2 s (a loaded host may drop one)
        assert 1 <= len(tenant) <= 3 and all(f == [REMOTE, "0003"] for f in tenant)
        assert tunnel == []  # never into the tunnel: the peer's own VM is not behind us
        assert f"{REMOTE} dev t0" not in _fdb(gw)  # forgotten: frames to it flood the tunnel
    finally:
        for p in (proc, *captures):
            p.kill()
            p.communicate()
