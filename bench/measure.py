"""Measurements run inside namespaces: iperf3 TCP and UDP, ping RTT, packets on the wire per
UDP datagram (where fragmentation starts), and CPU use while traffic runs."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench import ns as nsmod
from intercloud.lab import nsexec

UDP_SIZES = (64, 512, 1400, 1472, 4000, 8000)
IPERF_PORT = 5201
HZ = os.sysconf("SC_CLK_TCK")


@dataclass
class Mode:
    """How long and how often each measurement runs (full run vs --short)."""

    short: bool
    tcp_seconds: int = 5
    tcp_reps: int = 3
    udp_seconds: int = 2
    pings: int = 50
    frag_datagrams: int = 40
    # iperf3 -A "client,server" CPUs for TCP, to take the scheduler's placement of the two
    # single-threaded iperf3s out of a repetition (bench.layout --affinity; on 2026-12-07
    # it did not narrow the spread between reps: docs/benchmarks.md).
    tcp_affinity: str | None = None

    @classmethod
    def make(cls, short: bool) -> Mode:
        if short:
            return cls(True, tcp_seconds=2, tcp_reps=1, udp_seconds=1, pings=10, frag_datagrams=20)
        return cls(False)


@dataclass
class Endpoint:
    """Where traffic starts and ends: client namespace, server namespace and address, and the
    interface whose transmitted packets count what the sender's side puts on the underlay."""

    client_ns: str
    server_ns: str
    server_ip: str
    wire_ns: str
    wire_if: str
    charon_pids: Sequence[int] = ()
    cport: int | None = None  # iperf3 --cport base (TCP): consecutive client ports
    cport_runs: int = 0


@dataclass
class Suite:
    """Everything measured for one configuration."""

    tcp_gbps: float = 0.0
    tcp_runs: list[float] = field(default_factory=list)
    udp: dict[int, dict[str, float]] = field(default_factory=dict)
    rtt_ms: float = 0.0
    wire_packets: dict[int, float] = field(default_factory=dict)
    cpu: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tcp_gbps": self.tcp_gbps,
            "tcp_runs_gbps": self.tcp_runs,
            "udp": {str(k): v for k, v in self.udp.items()},
            "rtt_ms": self.rtt_ms,
            "wire_packets_per_datagram": {str(k): v for k, v in self.wire_packets.items()},
            "first_fragmented_size": first_fragmented(self.wire_packets),
            "cpu_during_tcp": self.cpu,
        }


def first_fragmented(wire: dict[int, float]) -> int | None:
    return next((s for s in sorted(wire) if wire[s] >= 1.5), None)


# --- iperf3 -----------------------------------------------------------------------------------


class Iperf3Server:
    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.proc = nsmod.exec_popen(ns, ["iperf3", "-s", "-p", str(IPERF_PORT)])
        deadline = time.monotonic() + 10
        while f":{IPERF_PORT} " not in nsmod.exec_run(ns, ["ss", "-ltnH"]).stdout:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"iperf3 server did not start in {ns}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def iperf3(ep: Endpoint, *args: str, seconds: int) -> dict[str, Any]:
    """One iperf3 client run (JSON). Retried: the server answers "busy" for a moment after a
    test, and with --cport a port of the last run may still be taken (a new base each try)."""
    for _attempt in range(4):
        argv = ["iperf3", "-c", ep.server_ip, "-p", str(IPERF_PORT), "-t", str(seconds), "-J"]
        if ep.cport:
            ep.cport_runs += 1
            argv += ["--cport", str(ep.cport + 100 * (ep.cport_runs % 100))]  # -P <= 64
        r = nsmod.exec_run(ep.client_ns, [*argv, *args], timeout=seconds + 60)
        try:
            data = json.loads(r.stdout)
        except ValueError:
            data = {"error": (r.stderr or r.stdout).strip()[-300:] or f"exit {r.returncode}"}
        if "error" not in data:
            return data
        time.sleep(1.0)
    raise RuntimeError(f"iperf3 {' '.join(args)} from {ep.client_ns}: {data['error']}")


def tcp(ep: Endpoint, mode: Mode, streams: int = 10) -> float:
    """Gb/s received, iperf3 -P streams; the first second (slow start) is omitted in full runs."""
    omit = [] if mode.short else ["-O", "1"]
    pin = ["-A", mode.tcp_affinity] if mode.tcp_affinity else []
    data = iperf3(ep, "-P", str(streams), *omit, *pin, seconds=mode.tcp_seconds)
    return data["end"]["sum_received"]["bits_per_second"] / 1e9


UDP_DRAIN_SECONDS = 0.5


def udp(ep: Endpoint, size: int, mode: Mode, offered_mbps: float) -> dict[str, float]:
    """Received Mb/s and loss with datagrams of `size` bytes offered at `offered_mbps` (the
    configuration's own TCP rate: unlimited offered load would measure only the overload,
    e.g. no 8000-byte datagram survives when 70 % of the fragments are dropped)."""
    rate = f"{max(offered_mbps, 1.0):.0f}M"
    # The last run's backlog (in charon, where it encrypts) drains first: iperf3 sets a UDP
    # stream up with one datagram each way, and one lost costs its 30 s timeout (measured: 5 of
    # 12 runs over the encrypted expansion without the pause, 0 of 18 with it).
    time.sleep(UDP_DRAIN_SECONDS)
    data = iperf3(ep, "-u", "-b", rate, "-l", str(size), seconds=mode.udp_seconds)
    got = data["end"]["sum_received"]
    sent = data["end"]["sum_sent"]
    return {
        "mbps": round(got["bits_per_second"] / 1e6, 2),
        "sent_mbps": round(sent["bits_per_second"] / 1e6, 2),
        "loss_pct": round(float(got["lost_percent"]), 2),
    }


# --- ping -------------------------------------------------------------------------------------

_TIME_RE = re.compile(r"time=([\d.]+) ms")


def ping_ok(ns: str, ip: str, count: int = 1, wait: float = 1.0) -> bool:
    argv = ["ping", "-n", "-c", str(count), "-i", "0.2", "-W", str(wait), ip]
    return nsmod.exec_run(ns, argv, timeout=count + wait + 10).returncode == 0


def rtt_ms(ns: str, ip: str, count: int) -> float:
    """Median RTT of `count` pings 20 ms apart (after one to resolve ARP)."""
    ping_ok(ns, ip, wait=2.0)
    r = nsmod.exec_run(ns, ["ping", "-n", "-c", str(count), "-i", "0.02", "-W", "2", ip])
    times = [float(t) for t in _TIME_RE.findall(r.stdout)]
    if not times:
        raise RuntimeError(f"no ping answer from {ip} in {ns}: {r.stdout[-200:]}")
    return round(statistics.median(times), 4)


# --- packets on the wire per datagram -----------------------------------------------------------


def wire_packets(ep: Endpoint, size: int, n: int) -> float:
    """Underlay packets the sender's gateway transmits per UDP datagram of `size` bytes (the
    datagram's own fragments and those of its encapsulation). Sent to the discard port; a
    first burst lets the sender learn the path MTU, as a real flow would."""

    def send(count: int) -> None:
        args = (ep.server_ip, str(size), str(count))
        argv = nsexec.program_argv(ep.client_ns, "bench.programs.udp_sender", *args)
        nsexec.run(argv, timeout=60)

    send(5)
    time.sleep(0.2)
    before = nsmod.tx_packets(ep.wire_ns, ep.wire_if)
    send(n)
    time.sleep(0.2)
    after = nsmod.tx_packets(ep.wire_ns, ep.wire_if)
    return round((after - before) / n, 2)


# --- CPU --------------------------------------------------------------------------------------


def _thread_ticks(pid: int) -> dict[str, int]:
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[tid] = int(fields[11]) + int(fields[12])
    return out


def _host() -> list[int]:
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


def with_cpu(fn: Callable[[], Any], charon_pids: Sequence[int] = ()) -> tuple[Any, dict]:
    """Run fn and report host CPU busy % (of all cores), charons' CPU (% of one core) and how
    many charon threads used more than 10 % of a core."""
    h0, t0 = _host(), time.monotonic()
    c0 = {pid: _thread_ticks(pid) for pid in charon_pids}
    result = fn()
    h1, dt = _host(), time.monotonic() - t0
    c1 = {pid: _thread_ticks(pid) for pid in charon_pids}
    d = [b - a for a, b in zip(h0, h1, strict=False)]
    idle = d[3] + d[4]
    total = sum(d) or 1
    per_thread = [
        (c1[pid][tid] - c0[pid].get(tid, c1[pid][tid])) / HZ / dt * 100
        for pid in charon_pids
        for tid in c1[pid]
    ]
    cpu = {
        "cores": os.cpu_count(),
        "host_busy_pct": round(100 * (1 - idle / total), 1),
        "softirq_pct": round(100 * d[6] / total, 1),
    }
    if charon_pids:
        cpu["charon_pct_of_one_core"] = round(sum(per_thread), 1)
        cpu["charon_threads_over_10pct"] = sum(1 for p in per_thread if p > 10)
        cpu["charon_busiest_thread_pct"] = round(max(per_thread, default=0.0), 1)
    return result, cpu
