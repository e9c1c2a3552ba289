"""Many fresh devices in one `ip -batch`: the Linux data plane's bulk path.

Creating 1,000 networks' bridges, tunnels and patches one pyroute2 request at a time costs
1-3 ms of Python per request (about 9 per network); iproute2 sends the same requests from C.
Only devices that do not exist yet are made this way, each as its plan step would make it
(`lines`). The batch runs with `-force` (a failed line does not stop the others). If ip did
every line, each step whose lines are all of it is done (bulk.whole). If any line failed, every
step is checked afterwards by the driver's ordinary step (driver.py): it finds its device made
and changes nothing, or makes it and reports its own precise error.

Every value of a line is checked for its use as the line is built (checks.py): interface
names, plain addresses, integers. One that fails raises DriverError and no line is made.
"""

from __future__ import annotations

import secrets
import subprocess

from intercloud.domain.hoststate import Attachment, Bridge, Patch, Vxlan
from intercloud.drivers.dataplane.linux import checks
from intercloud.drivers.nsexec import in_netns
from intercloud.errors import DriverError


def plain(*names: str) -> bool:
    """Interface names we put on a command line: what our naming and sane operators
    produce. Any other name goes the ordinary way (netlink, no parsing involved)."""
    return all(checks.is_ifname(n) for n in names)


def _mtu(mtu: int | None) -> str:
    return "" if mtu is None else f" mtu {checks.mtu(mtu)}"


def _alias(name: str, mark: str | None) -> list[Line]:
    return [(SET, f"link set {name} alias {checks.mark(mark)}")] if mark else []


# Lines run in three phases, whatever step they come from: every device is made, then
# configured, then set up. Measured with 1,000 patches: 12.5 s when each patch is made, moved
# and set up in turn, 1.8 s in phases (each "up" right after a change waits for the kernel's
# link events of the one before).
MAKE, SET, UP = 0, 1, 2
Line = tuple[int, str]


def in_phases(lines: list[Line]) -> list[str]:
    return [text for _, text in sorted(lines, key=lambda line: line[0])]


def split_up(lines: list[Line]) -> tuple[list[str], list[str]]:
    """(every device made and configured, then set up) in phases: two batches, for what must
    happen between (IPv6 off on the tunnel ports, ipv6.py)."""
    ordered = sorted(lines, key=lambda line: line[0])
    return [t for p, t in ordered if p != UP], [t for p, t in ordered if p == UP]


def bridge(br: Bridge, mark: str | None) -> list[Line]:
    # STP off and no forward delay: ports forward as soon as they are enslaved (as driver.py).
    name = checks.ifname(br.name, "bridge")
    out = [(MAKE, f"link add name {name}{_mtu(br.mtu)} up type bridge stp_state 0 forward_delay 0")]
    return out + _alias(name, mark)  # `ip link add` drops an alias: it takes a set


def vxlan(vx: Vxlan, mark: str | None, df: bool) -> list[Line]:
    """Into its bridge at birth, isolated before it is up; not up at all when a rate limit
    must be in place first (the driver's ordinary step then adds the qdisc, then sets it up)."""
    vx = checks.vxlan(vx)
    name = vx.name
    out = [
        (
            MAKE,
            f"link add name {name}{_mtu(vx.mtu)} master {vx.master} type vxlan id {vx.vni}"
            f" local {vx.local} remote {vx.remote} dstport {vx.port} learning"
            + (" df unset" if df is True else ""),
        )
    ]
    if vx.isolated:
        out.append((SET, f"link set {name} type bridge_slave isolated on"))
    out += _alias(name, mark)
    if vx.rate_mbit is None:
        out.append((UP, f"link set {name} up"))
    return out


def patch(p: Patch) -> list[Line]:
    for name in (p.name, p.master, p.peer, p.peer_master):
        checks.ifname(name, "patch")
    return [
        (MAKE, f"link add name {p.name} master {p.master} type veth peer name {p.peer}"),
        (SET, f"link set {p.peer} master {p.peer_master}"),
        (UP, f"link set {p.name} up"),
        (UP, f"link set {p.peer} up"),
    ]


def attach(att: Attachment) -> list[Line]:
    checks.ifname(att.interface, "attached")
    checks.ifname(att.master, "bridge")
    return [
        (SET, f"link set {att.interface} master {att.master}"),
        (UP, f"link set {att.interface} up"),
    ]


def forget_learned(name: str, bridge: bool) -> str:
    """The `bridge -batch` line that makes a bridge forget the MACs it learned on port `name`
    (`bridge`: the bridge `name` forgets what it learned on all of its ports). It deletes the
    learned entries in bulk, which the kernel announces as neighbour events: no interface
    changes, so the driver's last observation still holds (watch.py). The link-level flush
    (flush_learned) announces every port as changed, and the next pass read every interface
    again: 1.4 s at 3,000 tunnels, after every link that came back."""
    checked = checks.ifname(name, "bridge" if bridge else "bridge port")
    return f"fdb flush dev {checked}{'' if bridge else ' master'} dynamic"


def flush_learned(name: str, bridge: bool) -> str:
    """The `ip -batch` line that does what forget_learned's does, where `bridge fdb flush` is
    missing (iproute2 before 6.0, Linux before 5.19)."""
    checked = checks.ifname(name, "bridge" if bridge else "bridge port")
    kind = "bridge" if bridge else "bridge_slave"
    return f"link set dev {checked} type {kind} fdb_flush"


# What `bridge` says when it or the kernel cannot flush in bulk (not: a port that is gone)
_NO_BULK_FLUSH = ("is unknown", "not supported")


def run_bridge(lines: list[str], netns: str | None, timeout: float = 300.0) -> bool:
    """Run the lines in one `bridge -force -batch -`; False when this host cannot (no `bridge`
    tool, or it or the kernel lacks what a line asks): then the caller takes the `ip` way.
    A line that fails for its own reason (a port gone meanwhile) does not stop the others."""
    if not lines:
        return True
    try:
        done = _batch("bridge", lines, netns, timeout)
    except FileNotFoundError:
        return False
    except subprocess.TimeoutExpired:
        return True  # as `run`: best effort, the caller checks nothing of it
    return not any(what in done.stderr for what in _NO_BULK_FLUSH)


def delete_together(names: list[str], group: int) -> list[str]:
    """Lines that delete `names` in one request: each put in device group `group` (unused, see
    free_group), then the group deleted. The kernel then unregisters them as one batch, with
    one wait for RCU readers instead of one per device: 4,000 VXLAN devices in 0.71 s, not 67 s
    one by one (measured here)."""
    checked = [checks.ifname(name, "device") for name in names]
    if not 1 <= group < 2**31:
        raise DriverError(f"refusing to write device group {group!r}")
    return [f"link set {name} group {group}" for name in checked] + [f"link del group {group}"]


def free_group(netns: str | None, tries: int = 5) -> int | None:
    """A random device group no interface of the namespace is in (None: none found, then the
    caller deletes one by one). Random and checked: `link del group` deletes every member."""
    for _ in range(tries):
        group = secrets.randbelow(2**31 - 2**24) + 2**24  # far from 0 (default) and small ones
        argv = in_netns(["ip", "-o", "link", "show", "group", str(group)], netns)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if done.returncode == 0 and not done.stdout.strip():
            return group
    return None


def run(lines: list[str], netns: str | None, timeout: float = 300.0) -> str:
    """Run the lines (in_phases) in one `ip -force -batch -`; returns what ip printed on stderr
    (each line that failed; -force goes on with the next): '' only if ip ran and did every
    line. Missing `ip`, a timeout or a failure it did not explain: a text saying so."""
    if not lines:
        return ""
    try:
        done = _batch("ip", lines, netns, timeout)
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        return str(exc) or "ip -batch did not run"
    if done.returncode != 0 and not done.stderr.strip():
        return f"ip -batch exited with {done.returncode}"
    return done.stderr


def _batch(
    tool: str, lines: list[str], netns: str | None, timeout: float
) -> subprocess.CompletedProcess[str]:
    """`tool -force -batch -` (ip or bridge) in `netns`, fed `lines`."""
    argv = in_netns([tool, "-force", "-batch", "-"], netns)
    script = "".join(checks.one_line(line) + "\n" for line in lines)  # all, or nothing runs
    return subprocess.run(argv, input=script, capture_output=True, text=True, timeout=timeout)
