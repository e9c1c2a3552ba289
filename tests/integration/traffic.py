"""Traffic generators run inside lab VMs: TCP transfers with checksums, UDP datagrams, iperf3."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.waiting import wait_for

TCP_SINK = r"""
import hashlib, socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[1]))); srv.listen(1)
print("ready", flush=True)
conn, _ = srv.accept(); h = hashlib.sha256(); n = 0
while True:
    data = conn.recv(1 << 16)
    if not data:
        break
    h.update(data); n += len(data)
print(n, h.hexdigest(), flush=True)
"""

TCP_SOURCE = r"""
import hashlib, random, socket, sys
host, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(7); h = hashlib.sha256(); sent = 0
s = socket.create_connection((host, port), timeout=30)
while sent < total:
    chunk = rng.randbytes(min(1 << 16, total - sent))
    s.sendall(chunk); h.update(chunk); sent += len(chunk)
s.shutdown(socket.SHUT_WR); s.recv(1); s.close()
print(sent, h.hexdigest(), flush=True)
"""

UDP_SINK = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(float(sys.argv[2])); print("ready", flush=True); got = []
try:
    while True:
        data, _ = s.recvfrom(65535); got.append(data)
except TimeoutError:
    pass
sizes = {}
for d in got:
    ok = d == bytes([len(d) % 251]) * len(d)
    sizes.setdefault(len(d), [0, 0])[0 if ok else 1] += 1
print({k: v for k, v in sizes.items()}, flush=True)
"""

UDP_SOURCE = r"""
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for size in [int(x) for x in sys.argv[3].split(",")]:
    for _ in range(int(sys.argv[4])):
        s.sendto(bytes([size % 251]) * size, (host, port)); time.sleep(0.1)
"""


def start(lab, target: str, script: str, *args: str) -> subprocess.Popen[str]:
    """Run a script in a VM; returns once it printed its first line ('ready')."""
    proc = subprocess.Popen(
        ["ip", "netns", "exec", lab.namespace(target), sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", (
        f"{target}: {line!r} {proc.stderr.read() if proc.stderr else ''}"
    )
    return proc


def run(lab, target: str, script: str, *args: str, timeout: float = 120) -> str:
    r = lab.exec(target, [sys.executable, "-c", script, *args], timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def iperf3_server(lab, target: str) -> subprocess.Popen[str]:
    """iperf3 for one test in target's namespace, once the last one there has ended (it may still
    be closing its socket) and as soon as this one listens."""
    ns = lab.namespace(target)
    ss = ["ip", "netns", "exec", ns, "ss", "-Hltn", "sport = :5201"]

    def listening() -> str:
        return subprocess.run(ss, capture_output=True, text=True).stdout.strip()

    wait_for(lambda: not listening(), 10, 0.1, f"the last iperf3 in {target} to end")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, "iperf3", "-s", "-1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    wait_for(listening, 10, 0.1, f"iperf3 to listen in {target}")
    return proc


def iperf3_client(
    lab, target: str, server: str, seconds: int, streams: int = 1
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            lab.namespace(target),
            "iperf3",
            "-c",
            server,
            "-t",
            str(seconds),
            "-P",
            str(streams),
            "-J",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def mbits(proc: subprocess.Popen[str]) -> float:
    out, err = proc.communicate(timeout=120)
    data = json.loads(out)
    assert "error" not in data, data.get("error")
    return data["end"]["sum_received"]["bits_per_second"] / 1e6


# --- what the WAN router sees --------------------------------------------------------------

MARKER = b"INTERCLOUD-CLEARTEXT-MARKER"  # a payload that must never cross the WAN in clear


class WanCapture:
    """tcpdump on the lab's WAN router into `pcap` while the block runs:

    with WanCapture(lab, path) as wan:
        send_marker(lab, "A/a1", "B/b1", b_ip)
    assert MARKER not in wan.raw() and wan.lines("udp port 4789") == []
    """

    def __init__(self, lab, pcap: str) -> None:
        self.argv = ["ip", "netns", "exec", lab.namespace("wan")]
        self.argv += ["tcpdump", "-i", "any", "-s", "0", "-U", "-w", pcap]
        self.pcap = pcap

    def __enter__(self) -> WanCapture:
        self.proc = subprocess.Popen(self.argv, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        while "listening on" not in self.proc.stderr.readline():
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.5)  # packets still on their way; nothing tells when the last is in
        self.proc.terminate()
        self.proc.communicate(timeout=10)  # reaps it and closes its stderr pipe

    def raw(self) -> bytes:
        with open(self.pcap, "rb") as f:
            return f.read()

    def lines(self, bpf: str) -> list[str]:
        """The captured packets that match `bpf`, one line each."""
        out = subprocess.run(
            ["tcpdump", "-r", self.pcap, "-nn", *bpf.split()], capture_output=True, text=True
        ).stdout
        return out.splitlines()


def send_marker(lab, source, sink, ip: str) -> None:
    """20 UDP datagrams of MARKER x 20 from VM `source` to VM `sink` (at `ip`), all received."""
    got = start(lab, sink, UDP_SINK, "9999", "3")
    sender = (
        "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"[s.sendto({MARKER!r} * 20, ({ip!r}, 9999)) for _ in range(20)]"
    )
    run(lab, source, sender)
    assert "540" in got.communicate(timeout=30)[0]  # the marker datagrams did arrive
