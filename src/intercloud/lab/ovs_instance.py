"""Open vSwitch for the lab and the tests: one private ovsdb-server + ovs-vswitchd per simulated
cloud, run inside that cloud's network namespace, with its own directory for the database,
sockets, pidfiles and logs (the system OVS service stays stopped and untouched).

The kernel here has no OVS datapath, so every bridge uses the userspace one
(`datapath_type=netdev`), which also implements VXLAN/Geneve/GRE itself. Such tunnels need
their local IP on an OVS bridge (br-phy, holding the underlay NIC as a port); vswitchd learns
routes from the namespace's kernel and resolves ARP itself (`ovs-appctl tnl/arp/show`).
Veths feeding the netdev datapath get TX checksum offload turned off (the datapath does not
fill in checksums the kernel left to the "hardware").

Independent of lab/topology.py; acts only inside the namespaces it is given.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from intercloud.lab import namespaces, nsexec, processes
from intercloud.lab.nsexec import LabError, run

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


@dataclass
class OvsInstance:
    """One running OVS: `db` is the OVSDB connection string, `rundir` holds `<br>.mgmt`."""

    ns: str
    dir: Path

    @property
    def db(self) -> str:
        return f"unix:{self.dir / 'db.sock'}"

    @property
    def rundir(self) -> str:
        return str(self.dir)

    def vsctl(self, *args: str, check: bool = True) -> str:
        return run(["ovs-vsctl", f"--db={self.db}", "--timeout=10", *args], check=check).stdout

    def appctl(self, *args: str, check: bool = True) -> str:
        ctl = str(self.dir / "ovs-vswitchd.ctl")
        return run(["ovs-appctl", "-t", ctl, *args], check=check).stdout

    def ofctl(self, bridge: str, *args: str, check: bool = True) -> str:
        target = f"unix:{self.dir / bridge}.mgmt"
        return run(["ovs-ofctl", args[0], target, *args[1:]], check=check).stdout

    def pids(self) -> list[int]:
        out = []
        for name in ("ovsdb-server.pid", "ovs-vswitchd.pid"):
            with contextlib.suppress(OSError, ValueError):
                out.append(int((self.dir / name).read_text().strip()))
        return out


def _env(directory: Path) -> list[str]:
    d = str(directory)
    return ["env", f"OVS_RUNDIR={d}", f"OVS_DBDIR={d}", f"OVS_LOGDIR={d}", f"OVS_SYSCONFDIR={d}"]


def start_ovs(ns: str, directory: str | Path | None = None, timeout: float = 15.0) -> OvsInstance:
    """Start ovsdb-server and ovs-vswitchd in namespace `ns`, files under `directory` (a new
    temporary one if None). Returns when vswitchd has configured itself. On failure nothing is
    left running."""
    d = Path(directory) if directory else Path(tempfile.mkdtemp(prefix=f"ovs-{ns}-"))
    d.mkdir(parents=True, exist_ok=True)
    inst = OvsInstance(ns, d)
    try:
        run(["ovsdb-tool", "create", str(d / "conf.db"), SCHEMA])
        common = ["--detach", "--no-chdir"]
        run(
            nsexec.exec_argv(
                ns,
                [
                    *_env(d),
                    "ovsdb-server",
                    str(d / "conf.db"),
                    f"--remote=punix:{d / 'db.sock'}",
                    f"--pidfile={d / 'ovsdb-server.pid'}",
                    f"--unixctl={d / 'ovsdb-server.ctl'}",
                    f"--log-file={d / 'ovsdb-server.log'}",
                    *common,
                ],
            )
        )
        inst.vsctl("--no-wait", "init")
        run(
            nsexec.exec_argv(
                ns,
                [
                    *_env(d),
                    "ovs-vswitchd",
                    inst.db,
                    f"--pidfile={d / 'ovs-vswitchd.pid'}",
                    f"--unixctl={d / 'ovs-vswitchd.ctl'}",
                    f"--log-file={d / 'ovs-vswitchd.log'}",
                    *common,
                ],
            )
        )
        deadline = time.monotonic() + timeout
        while inst.appctl("version", check=False) == "":
            if time.monotonic() > deadline:
                raise LabError(f"ovs-vswitchd in {ns} did not answer within {timeout:.0f}s")
            time.sleep(0.05)
        # without --no-wait, ovs-vsctl returns once vswitchd has applied the change
        inst.vsctl("set", "Open_vSwitch", ".", "external_ids:intercloud-lab=ovs")
        return inst
    except BaseException:
        stop_ovs(inst)
        raise


def stop_ovs(inst: OvsInstance) -> None:
    """Kill both daemons (by their pidfiles) and remove the directory."""
    processes.kill_pids(inst.pids())
    shutil.rmtree(inst.dir, ignore_errors=True)


def offload_off(ns: str, ifname: str) -> None:
    """The netdev datapath does not complete checksums left to offload: compute them here."""
    run(nsexec.exec_argv(ns, ["ethtool", "-K", ifname, "tx", "off"]))


def add_bridge(inst: OvsInstance, name: str, fail_mode: str | None = None) -> None:
    """A userspace-datapath bridge, its internal port up."""
    args = ["--may-exist", "add-br", name, "--", "set", "bridge", name, "datapath_type=netdev"]
    if fail_mode:
        args.append(f"fail_mode={fail_mode}")
    inst.vsctl(*args)
    namespaces.set_up(inst.ns, name)


def add_underlay(inst: OvsInstance, nic: str, cidr: str, bridge: str = "br-phy") -> None:
    """Move the underlay NIC's IP onto `bridge` (the NIC becomes one of its ports): the
    userspace tunnels send through the bridge that holds their local IP."""
    add_bridge(inst, bridge)
    offload_off(inst.ns, nic)
    namespaces.set_up(inst.ns, nic)
    inst.vsctl("--may-exist", "add-port", bridge, nic)
    namespaces.ip("addr", "flush", "dev", nic, ns=inst.ns)
    namespaces.add_address(inst.ns, bridge, cidr)


def add_vm(
    inst: OvsInstance,
    vm_ns: str,
    port: str,
    tag: int,
    net_uuid: str,
    cidr: str,
    bridge: str = "br-int",
    mac: str | None = None,
    mtu: int | None = None,
) -> None:
    """A "VM" (namespace `vm_ns`, interface eth0 with `cidr`) on `bridge` as the Neutron OVS
    agent would plug it: access port `port`, tag=<local VLAN>, other_config:net_uuid.
    `mtu`: the VM's MTU, as Neutron would give it (underlay minus the tunnel overhead: the
    userspace datapath does not fragment, so full 1500-byte frames in a tunnel over a 1500
    underlay are dropped: ping works, TCP stalls)."""
    namespaces.add_namespace(vm_ns)
    namespaces.add_veth(inst.ns, port, vm_ns, "eth0")
    for ns, ifname in ((inst.ns, port), (vm_ns, "eth0")):
        offload_off(ns, ifname)
    namespaces.set_up(inst.ns, port)
    namespaces.set_up(vm_ns, "eth0", mac=mac, mtu=mtu)
    namespaces.add_address(vm_ns, "eth0", cidr)
    inst.vsctl(
        "--may-exist",
        "add-port",
        bridge,
        port,
        "--",
        "set",
        "port",
        port,
        f"tag={tag}",
        f"other_config:net_uuid={net_uuid}",
    )
