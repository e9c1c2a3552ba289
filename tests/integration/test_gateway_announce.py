"""The remote MACs across a take-over, end to end on real parts: two gateway roles of cloud A
(reconciler/ha.py with the Linux driver and the PostgreSQL leases, one process each) share a
real PostgreSQL (tests/integration/ha_cloud.py) and a tenant segment (namespace `tsw`, a
bridge) with a local VM; a peer's VXLAN device (namespace `nb`, MAC REMOTE) is the remote VM.

Traffic between the VMs is unicast only (static neighbours both ways): the tenant switch
learns REMOTE on gw1's port and nothing but a frame from REMOTE could move it. After kill -9
of gw1, gw2 announces the MACs gw1 recorded: the switch has REMOTE on gw2's port with no frame
from REMOTE in between, and the VM reaches REMOTE again through gw2 (whose bridge had learned
REMOTE on its tenant port from gw1's flood before, and forgot it at take-over)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time

import psycopg
import pytest

from tests.integration import ha_cloud
from tests.integration.ha_cloud import CLOUD_ADDRESS, DB_ADDRESS, GATEWAYS, SUBNET
from tests.integration.namespaces import ip
from tests.waiting import wait_for

REMOTE = "02:00:00:00:00:42"  # the remote VM (the peer's VXLAN device)
LOCAL = "02:00:00:00:00:11"  # the VM on the tenant segment
PEER = f"{SUBNET}.20"
URL = f"postgresql+psycopg://postgres@{DB_ADDRESS}:5432/ic"
ROLE = textwrap.dedent(
    """
    import logging, signal, subprocess, sys
    from intercloud.domain.leadership import Timing
    from intercloud.drivers.gateway.linux import LinuxGateway
    from intercloud.reconciler.ha import GatewayRole
    from intercloud.store import Store
    from intercloud.store.leases import PostgresLeases
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(threadName)s %(message)s")
    url, gateway = sys.argv[1], sys.argv[2]
    store = Store(url)
    store.migrate()
    timing = Timing()
    # the agent's reconciler brings the tunnel port up once active; here, by hand
    up = lambda: subprocess.run(["ip", "link", "set", "icv42", "up"], check=True)
    role = GatewayRole("A", gateway, timing, PostgresLeases(url, "A", gateway, timing),
                       LinuxGateway("ic", "198.18.200.1/24", "u0"), store, on_active=up)
    role.start()
    signal.pause()  # until killed
    """
)
# one broadcast frame from a MAC out of a device (argv: device, MAC)
SEND = textwrap.dedent(
    """
    import socket, sys
    mac = bytes.fromhex(sys.argv[2].replace(":", ""))
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((sys.argv[1], 0))
        s.send(b"\\xff" * 6 + mac + b"\\x88\\xb5" + b"\\x00" * 46)
    """
)


@pytest.fixture
def cloud(namespaces):
    c = ha_cloud.make(namespaces)
    try:
        c.build()
        _segment(c)
        yield c
    finally:
        c.close()
        namespaces.close()  # the namespaces first: the PostgreSQL data goes after its server
        shutil.rmtree(c.workdir, ignore_errors=True)


def _quiet(ns: str) -> None:
    """No IPv6 chatter (router solicitations, MLD): only the test's frames teach switches."""
    for conf in ("all", "default"):
        ip("netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{conf}.disable_ipv6=1")


def _segment(c: ha_cloud.HaCloud) -> None:
    for role in ("nb", "tsw", "vm"):
        c.ns[role] = c.namespaces(f"ha{role}")
    for ns in c.ns.values():
        _quiet(ns)
    nb, tsw, vm = c.ns["nb"], c.ns["tsw"], c.ns["vm"]
    # the peer on the underlay switch, its VXLAN device to the cloud's address
    c.namespaces.veth(nb, "u0", c.ns["sw"], "p9")
    ip("-n", c.ns["sw"], "link", "set", "p9", "master", "br0", "up")
    ip("-n", nb, "addr", "add", f"{PEER}/24", "dev", "u0")
    ip("-n", nb, "link", "set", "u0", "up")
    ip("-n", nb, "link", "add", "vx42", "type", "vxlan", "id", "42", "local", PEER,
       "remote", CLOUD_ADDRESS, "dstport", "4789")  # fmt: skip
    ip("-n", nb, "link", "set", "vx42", "address", REMOTE, "up")
    ip("-n", nb, "addr", "add", "10.9.0.2/24", "dev", "vx42")
    ip("-n", nb, "neigh", "replace", "10.9.0.1", "lladdr", LOCAL, "dev", "vx42", "nud", "permanent")
    # the tenant segment: a switch, the VM, each gateway's bridge with its tunnel port
    ip("-n", tsw, "link", "add", "br0", "type", "bridge")
    ip("-n", tsw, "link", "set", "br0", "up")
    c.namespaces.veth(vm, "e0", tsw, "v0")
    ip("-n", tsw, "link", "set", "v0", "master", "br0", "up")
    ip("-n", vm, "link", "set", "e0", "address", LOCAL, "up")
    ip("-n", vm, "addr", "add", "10.9.0.1/24", "dev", "e0")
    ip("-n", vm, "neigh", "replace", "10.9.0.2", "lladdr", REMOTE, "dev", "e0", "nud", "permanent")
    for i, gw in enumerate(GATEWAYS, 1):
        ns = c.ns[gw]
        ip("-n", ns, "link", "add", "icb1", "type", "bridge")
        ip("-n", ns, "link", "add", "icv42", "type", "vxlan", "id", "42", "local", CLOUD_ADDRESS,
           "remote", PEER, "dstport", "4789")  # fmt: skip
        ip("-n", ns, "link", "set", "icv42", "master", "icb1")  # down: up once active
        c.namespaces.veth(ns, "t0", tsw, f"g{i}")
        ip("-n", ns, "link", "set", "t0", "master", "icb1", "up")
        ip("-n", ns, "link", "set", "icb1", "up")
        ip("-n", tsw, "link", "set", f"g{i}", "master", "br0", "up")


def _start_role(c: ha_cloud.HaCloud, gw: str) -> None:
    log = open(c.workdir / f"{gw}.log", "ab")  # noqa: SIM115 - the role's output
    proc = subprocess.Popen(
        ["ip", "netns", "exec", c.ns[gw], sys.executable, "-c", ROLE, URL, gw],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    c.procs.append(proc)
    c.pids[gw] = proc.pid


def _fdb(ns: str, bridge: str) -> str:
    return subprocess.run(
        ["bridge", "-n", ns, "fdb", "show", "br", bridge], capture_output=True, text=True
    ).stdout


def _recorded(c: ha_cloud.HaCloud) -> object:
    with psycopg.connect(host=str(c.workdir), user="postgres", dbname="ic") as conn:
        row = conn.execute("SELECT macs FROM gateway_macs WHERE cloud = 'A'").fetchone()
    return None if row is None else row[0]


def _pings(vm: str) -> bool:
    return ip("netns", "exec", vm, "ping", "-c1", "-W1", "10.9.0.2", check=False).returncode == 0


def test_the_new_active_announces_the_remote_macs_the_old_one_recorded(cloud):
    try:
        _failover(cloud)
    except AssertionError:
        for gw in GATEWAYS:
            print(f"--- {gw}: fdb\n{_fdb(cloud.ns[gw], 'icb1')}--- log\n{cloud.log(gw)[-3000:]}")
        print(f"--- tenant switch: fdb\n{_fdb(cloud.ns['tsw'], 'br0')}")
        raise


def _failover(c: ha_cloud.HaCloud) -> None:
    _start_role(c, "gw1")
    c.wait_holder("gw1", timeout=30)
    _start_role(c, "gw2")
    vm, tsw = c.ns["vm"], c.ns["tsw"]
    wait_for(lambda: _pings(vm), 10, 0.1, "the VM to reach the remote VM through gw1")

    # a broadcast of the remote VM (an ARP request, say): gw1 floods it on the tenant segment,
    # where gw2's bridge learns REMOTE behind its tenant port
    # (sent again until seen: a loaded host may drop a frame)
    def broadcast_seen() -> bool:
        ip("netns", "exec", c.ns["nb"], sys.executable, "-c", SEND, "vx42", REMOTE)
        return f"{REMOTE} dev t0" in _fdb(c.ns["gw2"], "icb1")

    wait_for(broadcast_seen, 10, 0.2, "gw2 to see it")
    assert f"{REMOTE} dev g1" in _fdb(tsw, "br0")
    wait_for(lambda: _recorded(c) == {"icb1": [REMOTE]}, 10, 0.1, "gw1 to record REMOTE")

    c.kill("gw1")
    took = c.wait_holder("gw2")
    held_at = time.monotonic()
    # nothing from REMOTE since: only the announcement can have moved it
    wait_for(lambda: f"{REMOTE} dev g2" in _fdb(tsw, "br0"), 10, 0.02, "the switch to move it")
    moved = time.monotonic() - held_at
    print(
        f"\nkill -9 of the active: gw2 took over after {took * 1000:.0f} ms; the tenant "
        f"switch had the remote MAC on gw2's port {moved * 1000:.0f} ms after that (20 ms polls)"
    )
    assert "announcing 1 remote MACs on 1 tenant ports (t0)" in c.log("gw2")
    wait_for(lambda: _pings(vm), 10, 0.1, "the VM to reach the remote VM through gw2")
    assert f"{REMOTE} dev icv42" in _fdb(c.ns["gw2"], "icb1")  # learned where it is
    assert all("Traceback" not in c.log(gw) for gw in GATEWAYS)
