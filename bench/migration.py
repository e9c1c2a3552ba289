"""A VM that moves between clouds in standalone mode (a VM is a namespace): how long a VM that
stays loses it. `python -m bench.migration [--moves N]` (root; from the repository root).

Lab of two clouds, encrypted link, net1 of A expanded to B. VM `a1` stays in A and pings the
mover at 20/s. A move, as a live migration's switch-over: the source VM stops (its namespace
is deleted: its bridge port goes, with what the bridge learned there), the destination VM with
the same MAC and IP comes up on the other cloud's bridge and sends a gratuitous ARP (QEMU does
so at arrival); every bridge on the way learns the MAC's new place from that broadcast.
Moves alternate A -> B -> A ...; the figure is the longest gap between two replies around each
move (median and max over the moves). `--openstack`: the same with Neutron ports
(lab.move_vm)."""

from __future__ import annotations

import argparse
import json
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.dataplane import expand, wait_for
from intercloud.lab import nsexec
from intercloud.lab.openstack.lab import OpenStackLab
from intercloud.lab.topology import Lab

RESULTS = Path(__file__).resolve().parent / "results"
MAC = "02:00:0a:0a:00:63"
IP = "10.10.0.99"
# a gratuitous ARP (request form, sender = target = the VM's address) on eth0
GARP = r"""
import socket, sys
mac = bytes.fromhex(sys.argv[1].replace(":", "")); ip = socket.inet_aton(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(("eth0", 0))
arp = b"\x00\x01\x08\x00\x06\x04\x00\x01" + mac + ip + b"\x00" * 6 + ip
for _ in range(3):
    s.send(b"\xff" * 6 + mac + b"\x08\x06" + arp)
"""
PING_INTERVAL = 0.05
IDLE = 5.0  # seconds of ping before the first move: the no-move baseline
SETTLE = 2.0  # seconds between an OpenStack move's end and the next
REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)")


def place(lab: Lab, cloud: str) -> None:
    """The mover comes up in `cloud` (A: on net1, B: on the replica) and announces itself."""
    where = {"network": "net1"} if cloud == "A" else {"replica_of": "A/net1"}
    lab.add_vm(cloud, "mv", f"{IP}/24", mac=MAC, **where)  # type: ignore[arg-type]
    ns = lab.namespace(f"{cloud}/mv")
    subprocess.run(
        nsexec.exec_argv(ns, [sys.executable, "-c", GARP, MAC, IP]), check=True, timeout=10
    )


def move(lab: Lab, src: str, dst: str) -> None:
    lab.remove_vm(src, "mv")
    place(lab, dst)


def parsed(ping_output: str) -> list[tuple[float, int]]:
    """(time, icmp_seq) of each reply in `ping -D` output."""
    return [
        (float(m.group(1)), int(m.group(2)))
        for line in ping_output.splitlines()
        if (m := REPLY.match(line))
    ]


def gaps(ping_output: str, moves: list[float], stopped: float | None = None) -> list[float]:
    """Per move (its start time), the longest interval between two replies from 1 s before it
    to the next move (or the end). With `stopped` (when the ping ended), a silence that lasts
    to the window's end counts too: a ping that never answers again is not a short gap."""
    replies = [t for t, _ in parsed(ping_output)]
    out = []
    for i, start in enumerate(moves):
        end = moves[i + 1] if i + 1 < len(moves) else (stopped or float("inf"))
        window = [t for t in replies if start - 1.0 <= t < end]
        if stopped is not None:
            window.append(end)
        out.append(max((b - a for a, b in zip(window, window[1:], strict=False)), default=0.0))
    return out


class Pings:
    """A timestamped ping (`ping -D`, 20/s) from VM `source` to `ip`, running while VMs move:

        with Pings(lab, "A/s1", ip) as pings:
            starts.append(time.time()); move(...)
        pings.gaps(starts), pings.answered_after(starts[0])

    Its output goes to a file, never a pipe read at the end: 20 lines a second fill a pipe's
    64 KiB in about 40 s, and ping then blocks on its next write and sends nothing more (a
    journey of several moves looked like a VM that stopped answering)."""

    def __init__(self, lab: Lab, source: str, ip: str) -> None:
        self.argv = nsexec.exec_argv(
            lab.namespace(source), ["ping", "-D", "-i", str(PING_INTERVAL), "-W", "1", ip]
        )
        self.out = ""
        self.stopped: float | None = None  # when the ping was stopped

    def __enter__(self) -> Pings:
        self._file = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(self.argv, stdout=self._file, text=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped = time.time()
        self.proc.send_signal(signal.SIGINT)  # ping flushes its output and exits
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with self._file:
            self._file.seek(0)
            self.out = self._file.read()

    def replies(self) -> list[float]:
        return [t for t, _ in parsed(self.out)]

    def gaps(self, starts: list[float]) -> list[float]:
        return gaps(self.out, starts, self.stopped)

    def idle_gap(self, until: float) -> float:
        """The longest interval between two replies before `until` (no move yet)."""
        window = [t for t in self.replies() if t < until]
        return max((b - a for a, b in zip(window, window[1:], strict=False)), default=0.0)

    def lost_after(self, start: float) -> tuple[int, int]:
        """(lost, sent) among the echo requests from the first reply after `start` to the
        last reply, by ping's sequence numbers (a loaded machine sends slower than 20/s, so
        counting replies against the time elapsed would count as lost what was never sent)."""
        seqs = [seq for t, seq in parsed(self.out) if t >= start]
        if not seqs:
            return 0, 0
        sent = (max(seqs) - min(seqs)) % 65536 + 1
        return sent - len(set(seqs)), sent

    def answered_after(self, start: float, delay: float = 1.0) -> int:
        return sum(1 for t in self.replies() if t > start + delay)


def run_moves(lab: Lab, pinger: str, n: int, settle: float = 2.0) -> tuple[list[float], float]:
    """`n` moves of the mover (it starts in A), under a 20/s ping from `pinger`: the gap of
    each move, and the longest gap of the same ping over IDLE seconds before the first."""
    starts = []
    with Pings(lab, pinger, IP) as pings:
        time.sleep(IDLE)
        here = "A"
        for _ in range(n):
            there = "B" if here == "A" else "A"
            starts.append(time.time())
            move(lab, here, there)
            here = there
            time.sleep(settle)
    return pings.gaps(starts), pings.idle_gap(starts[0])


def standalone_moves(n: int, prefix: str | None = None) -> dict:
    """The standalone figure: a lab of two clouds, `n` moves A <-> B."""
    name = prefix or "bm" + secrets.token_hex(2)
    lab = Lab(name, state_dir=Path(tempfile.mkdtemp(prefix=f"bench-{name}-")))
    try:
        lab.up(2, encrypt=True, lanes=1)
        lab.peer("A", "B")
        expand(lab, "A", "p1", "net1", ["B"])
        lab.add_vm("A", "a1", "10.10.0.1/24", network="net1")
        place(lab, "A")
        wait_for(
            lambda: lab.exec("A/a1", ["ping", "-c", "1", "-W", "1", IP]).returncode == 0,
            60,
            "a1 -> mover",
        )
        got, idle = run_moves(lab, "A/a1", n)
    finally:
        lab.down()
    return {**summary(got), "idle_gap_s": round(idle, 3)}


def openstack_moves(n: int, prefix: str | None = None, lab: Lab | None = None) -> dict:
    """The same in OpenStack mode: Neutron ports moved by lab.move_vm (the destination's agent
    swaps its placeholder for the port, the VM switches over and announces itself, the old
    port goes once the origin saw the move). Each move waits for the last one's ports to settle
    (lab.move_vm returns once the origin saw the old port go), then `SETTLE` seconds. `lab`:
    an OpenStack lab of A and B peered, A's net1 expanded to B (bench/openstack.py's; it stays
    up), else one of its own."""
    own = lab is None
    if lab is None:
        name = prefix or "bq" + secrets.token_hex(2)
        lab = OpenStackLab(name, state_dir=Path(tempfile.mkdtemp(prefix=f"bench-{name}-")))
    assert isinstance(lab, OpenStackLab)
    try:
        if own:
            lab.up(2, lanes=1)
            lab.peer("A", "B")
        lab.add_vm("A", "s1", network="net1")
        mv = lab.add_vm("A", "mv", network="net1")
        if own:
            expand(lab, "A", "p1", "net1", ["B"])
        ip = mv.ip.split("/")[0]
        wait_for(
            lambda: lab.exec("A/s1", ["ping", "-c", "1", "-W", "1", ip]).returncode == 0,
            60,
            "s1 -> mv",
        )
        starts = []
        with Pings(lab, "A/s1", ip) as pings:
            time.sleep(IDLE)
            here = "A"
            for _ in range(n):
                there = "B" if here == "A" else "A"
                starts.append(lab.move_vm(here, there, "mv"))
                here = there
                time.sleep(SETTLE)
        got, idle = pings.gaps(starts), pings.idle_gap(starts[0])
    finally:
        if own:
            lab.down()
    return {**summary(got), "idle_gap_s": round(idle, 3)}


def summary(got: list[float]) -> dict:
    return {
        "moves": len(got),
        "gaps_s": [round(g, 3) for g in got],
        "median_s": round(statistics.median(got), 3),
        "max_s": round(max(got), 3),
        "ping_interval_s": PING_INTERVAL,
    }


def section(bench: Any) -> None:
    """`python -m bench`'s migration section (bench/run.py `Run`): 10 moves in each mode, the
    longest ping gap's median and max. --short: 2 standalone and 2 OpenStack moves (there and
    back: each OpenStack move waits for passes and Neutron's cache window, ~15 s)."""
    n = 2 if bench.mode.short else 10
    alone = standalone_moves(n, prefix=bench.prefix + "g")
    bench.log(f"standalone moves: {alone['gaps_s']}")
    shared = bench.openstack_lab  # built by the openstack section: its ~30 s saved
    try:
        ostack = openstack_moves(2 if bench.mode.short else n, bench.prefix + "h", shared)
    finally:
        if shared is not None:
            bench.down(shared)
            bench.openstack_lab = None
    bench.log(f"OpenStack moves: {ostack['gaps_s']}")
    bench.details["migration"] = {"standalone": alone, "openstack": ostack}
    idle = "no move: longest gap of the same ping before the first move"
    same = "the same moves in standalone mode (a VM is a namespace, no Neutron)"
    for stat in ("median", "max"):
        bench.figs.add(
            f"migration.standalone.{stat}",
            "migration",
            f"move A<->B, standalone, longest ping gap, {stat} of {n}",
            alone[f"{stat}_s"],
            "s",
            baseline=("migration.standalone.idle", idle, max(alone["idle_gap_s"], 0.001)),
            better="lower",
            target="value < 1",
        )
        bench.figs.add(
            f"migration.openstack.{stat}",
            "migration",
            f"move A<->B, OpenStack (Neutron ports), longest ping gap, {stat} of {ostack['moves']}",
            ostack[f"{stat}_s"],
            "s",
            baseline=(f"migration.standalone.{stat}", same, alone[f"{stat}_s"]),
            better="lower",
            target="value < 1",
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.migration", description=__doc__)
    p.add_argument("--moves", type=int, default=10)
    p.add_argument("--openstack", action="store_true", help="OpenStack mode too (~6 min more)")
    args = p.parse_args(argv)
    out = {"standalone": standalone_moves(args.moves)}
    if args.openstack:
        out["openstack"] = openstack_moves(args.moves)
    for mode, fig in out.items():
        print(
            f"{mode} move A<->B (encrypted), {fig['moves']} moves, 20/s ping: longest gap "
            f"median {fig['median_s']} s, max {fig['max_s']} s (no move: {fig['idle_gap_s']} s; "
            f"the ping interval: {PING_INTERVAL} s)"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "migration.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
