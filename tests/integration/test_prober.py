"""The Linux tunnel prober (drivers/probe/linux.py) on real VXLAN tunnel ports between two
namespaces: both sides judge the tunnel answering (one leads, one follows), a check at the
tunnel port's MTU is answered with a frame of its size, and what a hostile peer sends (garbage,
a flood of requests, forged answers) neither stops it nor draws more answers than the rate."""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from intercloud.domain import probe as p
from intercloud.drivers.probe.linux import LinuxProber
from intercloud.errors import DriverError
from tests.integration.namespaces import ip
from tests.waiting import wait_for

CLONE_NEWNET = 0x40000000
PORT = "ptv42"
FLOOD = 0xF100D  # the flood's nonce (a mutated garbage frame may still be a valid request)
_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def inside(ns: str) -> Iterator[None]:
    """This thread in namespace `ns` (what it opens, and the threads it starts, stay there)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        yield
    finally:
        _libc.setns(own, CLONE_NEWNET)
        os.close(own)
        os.close(target)


@pytest.fixture
def tunnel(namespaces):
    a, b = namespaces.make("pa"), namespaces.make("pb")
    namespaces.veth(a, "eth0", b, "eth0")
    for ns, me, other in ((a, "198.18.251.1", "198.18.251.2"), (b, "198.18.251.2", "198.18.251.1")):
        ip("-n", ns, "addr", "add", f"{me}/24", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        ip("-n", ns, "link", "add", "ptb1", "type", "bridge")
        ip(
            "-n",
            ns,
            "link",
            "add",
            PORT,
            "type",
            "vxlan",
            "id",
            "42",
            "local",
            me,
            "remote",
            other,
            "dstport",
            "4789",
        )
        ip("-n", ns, "link", "set", PORT, "master", "ptb1", "mtu", "1500", "up")
        ip("-n", ns, "link", "set", "ptb1", "up")
    probers = {}
    for ns, me, peer in ((a, "A", "B"), (b, "B", "A")):
        prober = LinuxProber("pt", me)
        with inside(ns):
            prober.start()
        prober.track({PORT: peer})
        probers[me] = prober
    yield a, b, probers
    for prober in probers.values():
        prober.stop()


def test_both_sides_answer_and_a_check_at_the_mtu_comes_back_its_size(tunnel):
    _, _, probers = tunnel
    for prober in probers.values():
        assert prober.available
        wait_for(
            lambda prober=prober: prober.verdict(PORT) is p.Verdict.ANSWERING,
            timeout=10,
            what="answering",
        )
        health = prober.health(PORT)
        assert health is not None and health.rtt_seconds and health.answered >= 1, health
    for prober in probers.values():  # leader and follower alike may check
        rtt = prober.check(PORT, 1514, 2.0)  # a 1500-byte VM MTU frame, both ways
        assert rtt is not None and 0 < rtt < 1
    with pytest.raises(DriverError):
        probers["A"].check(PORT, 1515, 1.0)  # larger than the port's MTU: refused, said
    with pytest.raises(DriverError):
        probers["A"].check("eth0", 60, 1.0)  # not one of our tunnel ports
    totals = probers["A"].totals()["B"]
    assert totals.answered >= 1 and totals.verdicts.get(p.Verdict.ANSWERING) == 1
    started = time.monotonic()
    probers["A"].stop()
    assert time.monotonic() - started < 2


def test_hostile_frames_neither_stop_it_nor_draw_more_answers_than_the_rate(tunnel):
    _, b, probers = tunnel
    wait_for(
        lambda: probers["A"].verdict(PORT) is p.Verdict.ANSWERING, timeout=10, what="answering"
    )
    with inside(b):
        raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(p.ETHERTYPE))
    raw.settimeout(0.05)
    mac = bytes.fromhex("02a0a0a0a0a0")
    rng = random.Random(18)
    try:
        valid = p.encode(p.REQUEST, mac, 0xBAD, 1, 0, 128)
        for _ in range(300):  # garbage with the probe ethertype: any byte may be wrong
            frame = bytearray(valid)
            for _ in range(rng.randint(1, 6)):
                frame[rng.randrange(len(frame))] = rng.randrange(256)
            raw.sendto(bytes(frame[: rng.randint(14, len(frame))]), (PORT, p.ETHERTYPE))
        for seq in range(500):  # forged answers: no nonce of A's run, no seq in flight
            forged = p.encode(p.ANSWER, mac, rng.getrandbits(32), seq, 0, 60)
            raw.sendto(forged, (PORT, p.ETHERTYPE))
        before = probers["A"].health(PORT)
        # garbage that parsed as requests drew answers: let the port's bucket fill again
        time.sleep(p.ANSWER_BURST / p.ANSWER_RATE)
        started = time.monotonic()
        for seq in range(1000):  # a flood of requests
            raw.sendto(p.encode(p.REQUEST, mac, FLOOD, seq, 0, 200), (PORT, p.ETHERTYPE))
        answers = 0
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                frame, _ = raw.recvfrom(p.MAX_FRAME)
                got = p.parse(frame)
                if got is not None and got.kind == p.ANSWER and got.nonce == FLOOD:
                    assert got.size == 200  # each answer is its request's size
                    answers += 1
        elapsed = time.monotonic() - started
        assert 1 <= answers <= p.ANSWER_BURST + p.ANSWER_RATE * elapsed + 1, answers
    finally:
        raw.close()
    after = probers["A"].health(PORT)
    assert before is not None and after is not None
    assert after.answered - before.answered <= 2  # forged answers counted for nothing
    assert probers["A"]._thread is not None and probers["A"]._thread.is_alive()
    wait_for(
        lambda: (h := probers["A"].health(PORT)) is not None and h.answered > after.answered,
        timeout=10,
        what="A's probes still answered after the flood",
    )


MANY = 60  # tunnel ports, past what BUDGET requests a second probe at the usual period
BUDGET = 20.0


def _spin(stop: threading.Event) -> None:
    """Hold the interpreter as a long reconciler pass does (the probers share it)."""
    while not stop.is_set():
        sum(i * i for i in range(20_000))


def _sent(prober: LinuxProber) -> int:
    return sum(t.sent for t in prober.totals().values())


def _rate_over(prober: LinuxProber, seconds: float) -> float:
    before, started = _sent(prober), time.monotonic()
    time.sleep(seconds)
    return (_sent(prober) - before) / (time.monotonic() - started)


def _verdicts(prober: LinuxProber, names: list[str]) -> list[p.Verdict | None]:
    return [prober.verdict(name) for name in names]


@pytest.fixture
def many(namespaces):
    """MANY VXLAN tunnel ports between two namespaces, a prober with a budget of BUDGET
    requests a second on each side, and a thread that holds the interpreter meanwhile."""
    a, b = namespaces.make("pa"), namespaces.make("pb")
    namespaces.veth(a, "eth0", b, "eth0")
    names = [f"ptv{1000 + i}" for i in range(MANY)]
    for ns, me, other in ((a, "198.18.251.1", "198.18.251.2"), (b, "198.18.251.2", "198.18.251.1")):
        ip("-n", ns, "addr", "add", f"{me}/24", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        lines = []
        for i, name in enumerate(names):
            vxlan = f"id {1000 + i} local {me} remote {other} dstport 4789"
            lines += [f"link add {name} type vxlan {vxlan}", f"link set {name} up"]
        batch = "\n".join(lines) + "\n"
        subprocess.run(
            ["ip", "-n", ns, "-batch", "-"], input=batch, check=True, text=True, timeout=60
        )
    stop = threading.Event()
    probers = {}
    try:
        for ns, me, peer in ((a, "A", "B"), (b, "B", "A")):
            probers[me] = prober = LinuxProber("pt", me, budget=BUDGET)
            with inside(ns):
                prober.start()
            prober.track(dict.fromkeys(names, peer))
        threading.Thread(target=_spin, args=(stop,), daemon=True).start()
        yield a, b, names, probers
    finally:
        stop.set()
        for prober in probers.values():
            prober.stop()


def test_past_its_budget_the_prober_stretches_its_period_and_still_finds_cut_tunnels(many):
    _, b, names, probers = many
    leader, follower = probers["A"], probers["B"]
    period = p.steady_period(MANY, BUDGET)
    assert leader.period == period > p.PERIOD and follower.period == p.PERIOD  # B leads none
    # new ports are re-probed every FAST_PERIOD until they answer (120 a second asked for)
    assert _rate_over(leader, 2.0) <= BUDGET * 1.1 + 1
    for prober in (leader, follower):
        wait_for(
            lambda prober=prober: set(_verdicts(prober, names)) == {p.Verdict.ANSWERING},
            timeout=30,
            what=f"{prober.me}: every tunnel answering",
        )
    # B learned the stretched period from A's requests: it expects them that far apart
    health = follower.health(names[0])
    assert health is not None and health.period == period
    time.sleep(p.expect_within(p.PERIOD) + 1)  # longer than B waits for a leader at PERIOD
    assert set(_verdicts(follower, names)) == {p.Verdict.ANSWERING}
    # one tunnel cut (its port gone on B's side): A finds it, and only it
    ip("-n", b, "link", "del", names[0])
    wait_for(lambda: leader.verdict(names[0]) is p.Verdict.SILENT, timeout=3 * period, what="cut")
    assert set(_verdicts(leader, names[1:])) == {p.Verdict.ANSWERING}
    # every tunnel cut: all are silent, and their re-probes stay within the budget too
    ip("-n", b, "link", "set", "eth0", "down")
    wait_for(
        lambda: set(_verdicts(leader, names)) == {p.Verdict.SILENT},
        timeout=3 * period,
        what="every tunnel silent",
    )
    assert _rate_over(leader, 2.0) <= BUDGET * 1.1 + 1  # MANY a second asked for
    ip("-n", b, "link", "set", "eth0", "up")
    wait_for(
        lambda: set(_verdicts(leader, names[1:])) == {p.Verdict.ANSWERING},
        timeout=30,
        what="answering again",
    )


def test_a_lone_tunnel_cut_is_found_though_no_frame_comes_at_all(tunnel):
    _, b, probers = tunnel
    wait_for(
        lambda: probers["A"].verdict(PORT) is p.Verdict.ANSWERING, timeout=10, what="answering"
    )
    ip("-n", b, "link", "del", PORT)  # nothing reaches A's socket from now on
    wait_for(lambda: probers["A"].verdict(PORT) is p.Verdict.SILENT, timeout=15, what="silent")
