"""Gateway failover under traffic: how long a VM of one cloud loses a VM of another when the
active gateway of its cloud fails. `python -m bench.ha [--failovers N]` (root; from the
repository root); `python -m bench --only ha` is the same in the benchmark's tables.

Lab with two gateways per cloud (lab up --ha), encrypted links, A's net1 expanded to B; VM
`a1` on A's tenant segment (behind both of A's gateways), `b1` and `b2` on B's replica. While
a1 pings b1 at 20/s and b2 sends a numbered broadcast at 20/s that a1 counts, A's active
gateway is failed (`kill`: SIGKILL of its agent and charons; `cut`: every link of its host
down), then restored as a standby before the next failover. The figure per failover is the
longest gap between two ping replies around it; every broadcast must arrive at most once
(two forwarding gateways would deliver it twice); two gateways of A never hold the cloud's
address or have tunnel ports up at the same 100 ms sample."""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.dataplane import expand, wait_for
from bench.migration import Pings
from intercloud.lab import namespaces, nsexec
from intercloud.lab.topology import Lab

RESULTS = Path(__file__).resolve().parent / "results"
SUBMARINER_LEASE_S = 15.0  # its gateway election's lease; it publishes no failover figure
SETTLE = 3.0  # seconds after a restore before the next failover
BROADCAST_PORT = 5999
SEND = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
n = 0
while True:
    s.sendto(str(n).encode(), (sys.argv[1], int(sys.argv[2])))
    n += 1
    time.sleep(0.05)
"""
RECEIVE = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
while True:
    data, _ = s.recvfrom(64)
    print(data.decode(errors="replace"), flush=True)
"""


class Broadcasts:
    """A numbered broadcast from VM `sender` (20/s) counted at VM `receiver`:

    with Broadcasts(lab, "B/b2", "A/a1", "10.10.0.255") as casts: ...
    casts.duplicates(), casts.received()"""

    def __init__(self, lab: Lab, sender: str, receiver: str, address: str) -> None:
        port = str(BROADCAST_PORT)
        self.receive_argv = nsexec.exec_argv(
            lab.namespace(receiver), [sys.executable, "-c", RECEIVE, port]
        )
        self.send_argv = nsexec.exec_argv(
            lab.namespace(sender), [sys.executable, "-c", SEND, address, port]
        )
        self.seen: Counter[str] = Counter()
        self.arrivals: list[tuple[float, int]] = []  # (when, number), in order of arrival

    def __enter__(self) -> Broadcasts:
        self._receiver = subprocess.Popen(self.receive_argv, stdout=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        time.sleep(0.3)  # the receiver binds before the first datagram
        self._sender = subprocess.Popen(self.send_argv, stdout=subprocess.DEVNULL)
        return self

    def _read(self) -> None:
        assert self._receiver.stdout is not None
        for line in self._receiver.stdout:  # read as it comes: the pipe never fills
            number = line.strip()
            self.seen[number] += 1
            if number.isdigit():
                self.arrivals.append((time.monotonic(), int(number)))

    def __exit__(self, *exc: object) -> None:
        self._sender.kill()
        self._sender.wait()
        time.sleep(0.3)  # the last ones in flight
        self._receiver.kill()
        self._receiver.wait()
        self._reader.join(timeout=5)
        if self._receiver.stdout is not None:
            self._receiver.stdout.close()

    def received(self) -> int:
        return len(self.seen)

    def duplicates(self) -> dict[str, int]:
        return {n: k for n, k in self.seen.items() if k > 1}

    def since(self, moment: float) -> list[int]:
        """The numbers that arrived after `moment` (time.monotonic())."""
        return [n for when, n in list(self.arrivals) if when > moment]

    def longest_silence(self) -> float:
        """The longest time between two arrivals, in seconds."""
        times = [when for when, _ in list(self.arrivals)]
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


class GatewayWatch:
    """Samples every 100 ms which of a cloud's gateways hold its address and which have a
    tunnel port up: `overlaps()` are the samples where two did."""

    def __init__(self, lab: Lab, cloud: str) -> None:
        c = lab.cloud(cloud)
        self.address = c.ip
        self.gateways = {g.name: g.ns for g in c.gateways.values()}
        self.samples: list[tuple[float, frozenset[str], frozenset[str]]] = []
        self._stop = threading.Event()

    def _sample(self) -> tuple[frozenset[str], frozenset[str]]:
        """(holding the address, forwarding): a gateway forwards between its tenant side and
        the tunnels when it holds the address and a tunnel port is up. Without the address
        an up port cannot send (the kernel has no route from a source address it does not
        hold) and nothing reaches it (the address's ARP is answered elsewhere): a killed
        gateway's ports stay up until its agent returns, forwarding nothing."""
        holding, forwarding = set(), set()
        for name, ns in self.gateways.items():
            addrs = namespaces.ip("-4", "-o", "addr", "show", ns=ns, check=False).stdout
            if f" {self.address}/" not in addrs:
                continue
            holding.add(name)
            links = namespaces.ip("-o", "link", "show", "type", "vxlan", ns=ns, check=False)
            if any(": icv" in line and ",UP" in line for line in links.stdout.splitlines()):
                forwarding.add(name)
        return frozenset(holding), frozenset(forwarding)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.samples.append((time.time(), *self._sample()))

    def __enter__(self) -> GatewayWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def overlaps(self) -> list[tuple[float, frozenset[str], frozenset[str]]]:
        return [s for s in self.samples if len(s[1]) > 1 or len(s[2]) > 1]


def build(name: str, lanes: int | None = None, state_dir: Path | None = None) -> Lab:
    """Two clouds with two gateways each, peered (encrypted), A's net1 expanded to B, VMs a1
    (A's segment) and b1, b2 (B's replica), a1 reaching b1. `state_dir`: where `intercloud
    lab --name NAME` finds it (default: a temporary one)."""
    lab = Lab(name, state_dir=state_dir or Path(tempfile.mkdtemp(prefix=f"bench-{name}-")))
    try:
        kwargs: dict[str, Any] = {} if lanes is None else {"lanes": lanes}
        lab.up(2, encrypt=True, ha=True, **kwargs)
        lab.peer("A", "B")
        expand(lab, "A", "p1", "net1", ["B"])
        lab.add_vm("A", "a1", "10.10.0.1/24", network="net1")
        lab.add_vm("B", "b1", "10.10.0.2/24", replica_of="A/net1")
        # the broadcasts' sender: not the pinged VM, whose MAC they would teach A's segment
        lab.add_vm("B", "b2", "10.10.0.3/24", replica_of="A/net1")
        wait_for(lambda: reaches(lab), 60, "a1 -> b1")
    except BaseException:
        lab.down()
        raise
    return lab


def reaches(lab: Lab, source: str = "A/a1", ip: str = "10.10.0.2") -> bool:
    return lab.exec(source, ["ping", "-c", "1", "-W", "1", ip]).returncode == 0


def fail_and_restore(lab: Lab, how: str, starts: list[float], settle: float = SETTLE) -> str:
    """Fail A's active gateway `how` (its start time appended to `starts`), wait for the other
    to hold the address, restore the failed one; the failed gateway's name."""
    before = lab.active_gateway("A")
    starts.append(time.time())
    failed = lab.fail_gateway("A", how)
    wait_for(lambda: lab.active_gateway("A") not in (None, before), 30, "the other gateway")
    time.sleep(settle)
    lab.restore_gateway("A", failed)
    time.sleep(settle)
    return failed


def failovers(lab: Lab, n: int) -> dict[str, Any]:
    """`n` failovers each of kill and cut under the ping and the broadcast."""
    out: dict[str, Any] = {}
    with GatewayWatch(lab, "A") as watch, Broadcasts(lab, "B/b2", "A/a1", "10.10.0.255") as casts:
        for how in ("kill", "cut"):
            starts: list[float] = []
            with Pings(lab, "A/a1", "10.10.0.2") as pings:
                time.sleep(2.0)
                for _ in range(n):
                    fail_and_restore(lab, how, starts)
            out[how] = summary(pings.gaps(starts))
    out["broadcasts"] = casts.received()
    out["duplicates"] = len(casts.duplicates())
    out["overlaps"] = len(watch.overlaps())
    return out


def summary(gaps: list[float]) -> dict[str, Any]:
    ordered = sorted(gaps)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "failovers": len(gaps),
        "gaps_s": [round(g, 3) for g in gaps],
        "median_s": round(statistics.median(gaps), 3),
        "p95_s": round(p95, 3),
        "max_s": round(max(gaps), 3),
    }


def measure(n: int, prefix: str | None = None) -> dict[str, Any]:
    lab = build(prefix or "bh" + secrets.token_hex(2))
    try:
        return failovers(lab, n)
    finally:
        lab.down()


def section(bench: Any) -> None:
    """`python -m bench`'s ha section (bench/run.py `Run`): 10 failovers each (2 with
    --short) of kill and cut; median, p95 and max of the ping gap; duplicates."""
    n = 2 if bench.mode.short else 10
    got = measure(n, prefix=bench.prefix + "i")
    bench.details["ha"] = got
    bench.log(f"ha: kill {got['kill']['gaps_s']}, cut {got['cut']['gaps_s']}")
    lease = ("ha.submariner", "Submariner's gateway lease (it publishes no failover figure)", 15.0)
    targets = {"kill": "value < 1", "cut": "value < 2"}
    for how in ("kill", "cut"):
        for stat in ("median", "p95", "max"):
            bench.figs.add(
                f"ha.{how}.{stat}",
                "ha",
                f"gateway failover ({how}), encrypted, longest ping gap, {stat} of {n}",
                got[how][f"{stat}_s"],
                "s",
                baseline=lease,
                better="lower",
                target=targets[how] if stat == "median" else "",
            )
    once = 100.0 * (got["broadcasts"] - got["duplicates"]) / max(got["broadcasts"], 1)
    bench.figs.add(
        "ha.delivered_once",
        "ha",
        f"broadcasts from B delivered once at A during {2 * n} failovers, of "
        f"{got['broadcasts']} received",
        round(once, 3),
        "%",
        baseline=("ha.received", "every broadcast received", 100.0),
        target="value >= 100",
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ha", description=__doc__)
    p.add_argument("--failovers", type=int, default=10, help="of each kind (kill, cut)")
    args = p.parse_args(argv)
    got = measure(args.failovers)
    for how in ("kill", "cut"):
        fig = got[how]
        print(
            f"failover ({how}), encrypted, 20/s ping: longest gap median {fig['median_s']} s, "
            f"p95 {fig['p95_s']} s, max {fig['max_s']} s over {fig['failovers']}: {fig['gaps_s']}"
        )
    print(
        f"broadcasts: {got['broadcasts']} received, {got['duplicates']} delivered twice; "
        f"samples with two gateways holding or forwarding: {got['overlaps']}; "
        f"reference: Submariner's lease {SUBMARINER_LEASE_S:.0f} s"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ha.json").write_text(json.dumps(got, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
