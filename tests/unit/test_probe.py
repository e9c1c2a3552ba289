"""Probes through the tunnels, the pure part (domain/probe.py): the frame and its strict parser
fed hostile bytes, one port's window and verdict, the per-peer figures, and what the metrics,
views and CLI make of them."""

from __future__ import annotations

import random
import struct

import pytest

from intercloud.cli import output
from intercloud.domain import probe as p
from intercloud.drivers.probe.ports import Budget, Port, after_send, next_look
from intercloud.service import gauges, topology, views

MAC = bytes.fromhex("02aabbccdd01")
OTHER = bytes.fromhex("02aabbccdd02")


def request(size: int = p.MIN_FRAME, seq: int = 7) -> bytes:
    return p.encode(p.REQUEST, MAC, 0xDEADBEEF, seq, 123456789, size)


def test_a_request_parses_back_and_its_answer_is_the_same_size_from_the_answerer():
    for size in (p.MIN_FRAME, 1514, p.MAX_FRAME):
        frame = request(size)
        assert len(frame) == size
        assert frame[:6] == p.GROUP and frame[12:14] == b"\x88\xb5"
        got = p.parse(frame)
        assert got == p.Probe(p.REQUEST, MAC, 0xDEADBEEF, 7, 123456789, size, None)
        reply = p.answer(frame, OTHER)
        assert reply is not None and len(reply) == size
        parsed = p.parse(reply)
        assert parsed is not None
        assert (parsed.kind, parsed.source, parsed.seq) == (p.ANSWER, OTHER, 7)


def test_stamp_changes_the_sequence_number_send_time_and_ack():
    template = bytearray(p.encode(p.REQUEST, MAC, 5, 0, 0, p.MIN_FRAME))
    got = p.parse(p.stamp(template, 5, 42, 99))
    assert got is not None and (got.nonce, got.seq, got.sent_ns, got.ack) == (5, 42, 99, None)
    got = p.parse(p.stamp(template, 5, 43, 100, p.Ack(42, 1234, 1000)))
    assert got is not None and got.ack == p.Ack(42, 1234, 1000) and got.source == MAC
    reply = p.answer(p.stamp(template, 5, 43, 100, p.Ack(42, 1234, 7)), OTHER)
    assert reply is not None and p.parse(reply).ack == p.Ack(42, 1234, 7)  # type: ignore[union-attr]


def test_a_stretched_period_is_said_in_the_request_and_the_usual_one_is_version_1s_frame():
    template = bytearray(p.encode(p.REQUEST, MAC, 5, 0, 0, p.MIN_FRAME))
    plain = p.stamp(template, 5, 42, 99, p.Ack(41, 10, 0))
    assert plain[48:50] == b"\x00\x00" and p.parse(plain).period is None  # type: ignore[union-attr]
    said = p.parse(p.stamp(template, 5, 43, 100, None, 50.0))
    assert said is not None and said.period == 50.0 and said.ack is None
    said = p.parse(p.stamp(template, 5, 44, 100, p.Ack(43, 10, 0), 1e6))  # capped, not wrapped
    assert said is not None and said.period == 300.0 and said.ack == p.Ack(43, 10, 0)
    reply = p.answer(p.stamp(template, 5, 45, 100, None, 12.3), OTHER)
    assert reply is not None and p.parse(reply).period == 12.3  # type: ignore[union-attr]


def test_the_steady_period_stretches_past_the_budget_and_the_judgements_with_it():
    assert p.steady_period(0) == p.steady_period(1000) == p.PERIOD  # 200 requests/s at 5 s
    assert p.steady_period(10_000) == 50.0  # half of 400 a second, the rest for re-probes
    assert p.steady_period(1001) == 5.1  # tenths, rounded up: never over the share
    assert p.steady_period(10**7) == p.MAX_PERIOD
    assert p.steady_period(100, budget=20) == 10.0
    assert p.silent_after(p.PERIOD) == p.SILENT_AFTER and p.silent_after(1.0) == p.SILENT_AFTER
    assert p.silent_after(50.0) == pytest.approx(10 * p.SILENT_AFTER)
    assert p.expect_within(p.PERIOD) == p.EXPECT_WITHIN
    # a leader at 50 s: an answer 30 s ago is fine, one 111 s ago is silence
    w = p.Window(1000.0)
    w.period = 50.0
    w.sent_one(1, 10.0)
    w.answer(1, 10.001, 1000.0)
    assert w.verdict(1030.0) is p.Verdict.ANSWERING
    assert w.verdict(1000.0 + p.silent_after(50.0) + 0.1) is p.Verdict.SILENT
    assert p.verdict(w.health(), 1030.0) is p.Verdict.ANSWERING  # the status judges alike


def test_the_budget_lets_rate_a_second_through_and_says_when_the_next_may_go():
    budget = Budget(10.0, 2.0, now=0.0)
    assert budget.take(0.0) and budget.take(0.0) and not budget.take(0.0)  # the burst
    assert budget.ready_at(0.0) == pytest.approx(0.1)
    assert not budget.take(0.05) and budget.take(0.1)
    sent = sum(budget.take(t / 1000) for t in range(100, 10_100))  # 10 s, asked every 1 ms
    assert 99 <= sent <= 101
    assert budget.ready_at(100.0) == 100.0  # idle: ready, and no more than the burst saved
    assert budget.take(100.0) and budget.take(100.0) and not budget.take(100.0)
    with pytest.raises(ValueError):
        Budget(0.0, 1.0, now=0.0)


def test_one_side_of_each_tunnel_leads():
    assert p.leads("A", "B") and not p.leads("B", "A")
    w = p.Window(0.0)
    assert w.ack(1) is None  # nothing answered yet: nothing to say
    w.sent_one(1, 1.0)
    w.answer(1, 1.0015, 5.0)
    assert w.ack(1) == p.Ack(1, 1500, 0)
    w.sent_one(2, 2.0)
    assert w.answer(2, 9.0, 6.0, rtt=0.003) == 0.003  # a follower takes the leader's figure


def _patched(frame: bytes, at: int, value: bytes) -> bytes:
    return frame[:at] + value + frame[at + len(value) :]


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        request()[:59],  # shorter than an Ethernet frame
        request() + b"\x00" * (p.MAX_FRAME - p.MIN_FRAME + 1),  # larger than a jumbo frame
        _patched(request(), 0, bytes.fromhex("0180c200000e")),  # another group (LLDP)
        _patched(request(), 0, OTHER),  # unicast destination
        _patched(request(), 12, b"\x08\x00"),  # IPv4, not the probe ethertype
        _patched(request(), 14, b"XXXX"),  # wrong magic
        _patched(request(), 18, b"\x02"),  # a version we do not speak
        _patched(request(), 19, b"\x03"),  # unknown kind
        _patched(request(), 19, b"\x00"),
        _patched(request(), 20, b"\x00\x02"),  # a flag we do not know
        _patched(request(), 40, b"\x00\x00\x00\x07"),  # an ack without its flag
        _patched(p.encode(p.REQUEST, MAC, 1, 2, 3, 60, p.Ack(1, 5, 0)), 46, b"\x03\xe9"),
        _patched(request(), 48, b"\x00\x01"),  # a period without its flag
        _patched(request(), 20, b"\x00\x02"),  # the period flag without a period
        _patched(_patched(request(), 20, b"\x00\x02"), 48, b"\x0b\xb9"),  # 300.1 s
        _patched(request(), 6, bytes.fromhex("01aabbccdd01")),  # multicast source
        _patched(request(), 50, b"\x01"),  # padding that is not zeros
    ],
)
def test_parse_refuses_what_is_not_exactly_a_probe(frame):
    assert p.parse(frame) is None
    assert p.answer(frame, OTHER) is None


def test_answers_are_never_answered_and_random_bytes_never_raise():
    reply = p.answer(request(), OTHER)
    assert reply is not None and p.answer(reply, MAC) is None  # no ping-pong between agents
    rng = random.Random(18)
    base = request(128)
    for _ in range(3000):
        frame = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            frame[rng.randrange(len(frame))] = rng.randrange(256)
        frame = frame[: rng.randint(0, len(frame))]
        got = p.parse(bytes(frame))  # never raises
        if got is not None:
            assert got.kind in (p.REQUEST, p.ANSWER) and len(frame) >= p.MIN_FRAME
    for _ in range(500):
        blob = rng.randbytes(rng.randint(0, 200))
        assert p.parse(blob) is None


def test_encode_refuses_sizes_kinds_and_addresses_out_of_range():
    for kwargs in ({"size": 59}, {"size": p.MAX_FRAME + 1}, {"kind": 3}, {"source": b"\x02"}):
        args = {"kind": p.REQUEST, "source": MAC, "size": 60, **kwargs}
        with pytest.raises(ValueError):
            p.encode(args["kind"], args["source"], 1, 1, 1, args["size"])


def test_window_round_trips_losses_and_forged_answers():
    w = p.Window(wall=1000.0, size=4)
    w.sent_one(1, mono=10.0)
    assert w.answer(1, mono=10.002, wall=1001.0) == pytest.approx(0.002)
    assert w.answer(1, mono=10.003, wall=1001.0) is None  # the same answer twice
    assert w.answer(99, mono=10.003, wall=1001.0) is None  # never sent
    w.sent_one(2, mono=11.0)
    w.sent_one(3, mono=12.0)
    assert w.expire(mono=12.5, timeout=1.0) == 1  # 2 is late, 3 still in flight
    assert w.answer(2, mono=12.6, wall=1002.6) is None  # too late: already lost
    h = w.health()
    assert (h.sent, h.answered, h.last_answer_at) == (3, 1, 1001.0)
    assert h.rtt_seconds == pytest.approx(0.002)
    assert h.loss == pytest.approx(0.5)
    for seq in range(10, 14):  # the window keeps the last 4 outcomes only
        w.sent_one(seq, mono=20.0)
        w.answer(seq, mono=20.001, wall=1010.0)
    assert w.health().loss == 0.0


def test_verdicts_starting_unanswered_answering_silent():
    never = p.TunnelHealth(1000.0, None, None, 1.0, 3, 0)
    assert p.verdict(never, 1000.0 + p.GRACE - 1) is p.Verdict.STARTING
    assert p.verdict(never, 1000.0 + p.GRACE + 1) is p.Verdict.UNANSWERED
    fine = p.TunnelHealth(1000.0, 2000.0, 0.001, 0.0, 9, 9)
    assert p.verdict(fine, 2000.0 + p.SILENT_AFTER - 0.1) is p.Verdict.ANSWERING
    assert p.verdict(fine, 2000.0 + p.SILENT_AFTER + 0.1) is p.Verdict.SILENT
    w = p.Window(1000.0)
    w.sent_one(1, 5.0)
    w.answer(1, 5.001, 2000.0)
    assert w.verdict(2000.0 + p.SILENT_AFTER + 0.1) is p.Verdict.SILENT
    # silence is judged after at least two probes could have been answered
    assert p.SILENT_AFTER >= 2 * p.PERIOD * 1.1


def test_summaries_and_the_metrics_families():
    now = 5000.0
    healths = [
        p.TunnelHealth(0.0, now - 1, 0.002, 0.0, 5, 5),
        p.TunnelHealth(0.0, now - 1, 0.004, 0.2, 5, 4),
        p.TunnelHealth(0.0, now - 60, 0.001, 1.0, 30, 10),
        p.TunnelHealth(now - 1, None, None, 0.0, 1, 0),
    ]
    s = p.summarize("B", healths, now)
    assert (s.tunnels, s.answering, s.silent, s.unanswered) == (4, 2, 1, 1)
    assert s.rtt_seconds == 0.002 and s.loss == pytest.approx(0.3)
    totals = p.PeerTotals(sent=10, lost=2, verdicts={p.Verdict.SILENT: 1})
    for rtt in (0.0002, 0.003, 5.0):
        totals.observe(rtt)
    assert totals.buckets()[-1] == ("+Inf", 3) and totals.buckets()[0] == ("0.0001", 0)

    class Source:
        def totals(self):
            return {"B": totals}

    fams = {f.name: f for f in gauges.probes(Source())()}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in fams.values() for s in f.samples
    }
    assert samples[("intercloud_tunnel_probes_total", (("peer", "B"), ("result", "answered")))] == 3
    assert samples[("intercloud_tunnel_probes_total", (("peer", "B"), ("result", "lost")))] == 2
    assert samples[("intercloud_tunnel_probe_rtt_seconds_count", (("peer", "B"),))] == 3
    assert samples[("intercloud_tunnels_silent", (("peer", "B"),))] == 1
    key = ("intercloud_tunnels_probed", (("peer", "B"), ("verdict", "answering")))
    assert samples[key] == 0


def test_views_cli_and_topology_show_the_figures():
    health = p.TunnelHealth(1000.0, 1_700_000_000.0, 0.00042, 0.1, 10, 9)
    view = views.tunnel(health)
    assert view is not None
    assert view["rtt_ms"] == 0.42 and view["loss"] == 0.1 and view["answered"] == 9
    assert view["last_answer_at"].startswith("2023-11-14T22:13:20")
    assert views.tunnel(None) is None
    exp = {"peers": [{"peer": "B", "vni": 101}, {"peer": "C", "vni": None}]}
    views.with_tunnels(exp, "ic", lambda port: health if port == "icv101" else None)
    assert exp["peers"][0]["tunnel"]["rtt_ms"] == 0.42 and exp["peers"][1]["tunnel"] is None
    line = output.peer_line({"peer": "B", "status": "active", "vni": 101, **exp["peers"][0]})
    assert line == "B: active (vni 101) rtt 0.42 ms, loss 10%"
    assert output.tunnel_cell(views.tunnel(p.TunnelHealth(0, None, None, 1.0, 3, 0))) == (
        "no answer yet, loss 100%"
    )
    assert output.tunnel_cell(None) == "-"
    topo = {"links": [{"peer": "B", "rtt_ms": None}, {"peer": "C", "rtt_ms": None}]}
    summary = p.summarize("B", [health], 1_700_000_001.0)
    topology.with_rtt(topo, {"B": summary})
    assert topo["links"][0]["rtt_ms"] == 0.42 and topo["links"][1]["rtt_ms"] is None


def test_the_header_layout_is_what_the_docstring_says():
    frame = request()
    magic, version, kind, flags, nonce, seq, sent_ns = struct.unpack_from("!4sBBHIIQ", frame, 14)
    assert (magic, version, kind, flags) == (b"ICPB", 1, p.REQUEST, 0)
    assert (nonce, seq, sent_ns) == (0xDEADBEEF, 7, 123456789)


def test_three_probes_lost_in_a_row_make_a_port_silent_and_one_answer_ends_it():
    w = p.Window(1000.0)
    w.sent_one(1, 10.0)
    w.answer(1, 10.001, 1000.0)
    for seq, at in ((2, 15.0), (3, 15.5), (4, 16.0)):  # the steady probe, then fast re-probes
        w.sent_one(seq, at)
    assert w.expire(16.2, p.TIMEOUT) == 1 and w.missed == 1  # suspect: not silent yet
    assert w.verdict(1001.0) is p.Verdict.ANSWERING
    assert w.expire(17.2, p.TIMEOUT) == 2 and w.missed == p.MISSES
    # silent long before SILENT_AFTER, and the status says since the last answer
    assert w.verdict(1007.2) is p.Verdict.SILENT and w.health().last_answer_at == 1000.0
    assert w.health().missed == p.MISSES
    w.sent_one(5, 17.5)
    w.answer(5, 17.501, 1007.5)  # the tunnel passes frames again
    assert w.missed == 0 and w.verdict(1007.5) is p.Verdict.ANSWERING
    # detection: the last answer, a steady period and its spread, MISSES probes FAST_PERIOD
    # apart each late by TIMEOUT, and a judgement (every 0.5 s) fit in 10 s with room
    worst = 1.1 * p.PERIOD + (p.MISSES - 1) * p.FAST_PERIOD + p.TIMEOUT + 0.5
    assert worst <= 8.5


def test_a_follower_counts_the_answers_the_leader_did_not_get_and_expects_its_requests():
    w = p.Window(1000.0)
    w.sent_one(1, 10.0)  # our answer to request 1
    w.answer(1, 15.0, 1005.0, rtt=0.002)  # request 2 says it arrived
    w.expect(1005.0 + p.EXPECT_WITHIN)
    w.sent_one(2, 15.0)
    assert w.lost_before(3) == 1 and w.missed == 1  # request 3 came without our answer to 2
    w.sent_one(3, 15.5)
    assert w.lost_before(3) == 0  # not before itself
    assert w.lost_before(4) == 1 and w.lost_before(5) == 0
    w.sent_one(5, 16.5)
    assert w.lost_before(6) == 1 and w.verdict(1006.5) is p.Verdict.SILENT
    assert w.loss() == pytest.approx(3 / 4)
    # requests that stop coming: silent once the next one is overdue, whatever was counted
    f = p.Window(1000.0)
    f.sent_one(1, 10.0)
    f.answer(1, 15.0, 1005.0, rtt=0.002)
    f.expect(1005.0 + p.EXPECT_WITHIN)
    assert f.verdict(1005.0 + p.EXPECT_WITHIN - 0.1) is p.Verdict.ANSWERING
    assert f.verdict(1005.0 + p.EXPECT_WITHIN + 0.1) is p.Verdict.SILENT
    # a steady period, its spread and re-probes of a lost request fit in; 10 s with room
    assert 1.1 * p.PERIOD + p.FAST_PERIOD < p.EXPECT_WITHIN <= 7.5
    health = f.health()
    assert p.verdict(health, 1005.0 + p.EXPECT_WITHIN + 0.1) is p.Verdict.SILENT


def test_the_schedule_probes_steadily_while_answered_fast_while_suspect():
    port = Port("icv1", "B", p.Window(1000.0), p.PeerTotals(), started=0.0, leads=True)
    # new: probed every FAST_PERIOD until it answers
    port.seq = 1
    port.window.sent_one(1, 0.0)
    assert after_send(port, 0.0, p.PERIOD) <= 1.1 * p.FAST_PERIOD
    assert next_look(port, 0.6) is None  # unanswered: probe now
    port.window.answer(1, 0.01, 1000.0)
    due = after_send(port, 0.6, p.PERIOD)
    assert due == 0.6 + p.FAST_PERIOD  # a look soon: was it answered?
    assert next_look(port, due) == port.steady_at  # yes: wait for the steady period
    assert 0.6 + 0.9 * p.PERIOD <= port.steady_at <= 0.6 + 1.1 * p.PERIOD
    # the steady probe goes unanswered: suspect, re-probed at the next look
    port.seq = 2
    port.window.sent_one(2, port.steady_at)
    look = after_send(port, port.steady_at, p.PERIOD)
    assert next_look(port, look) is None
    port.window.expire(look + p.TIMEOUT, p.TIMEOUT)
    assert next_look(port, look + p.TIMEOUT) is None  # a miss since the last answer: probe
    port.window.missed = p.MISSES  # silent: re-probed at the recovery rate
    now = look + 2
    assert now + 0.9 * p.RECOVER_PERIOD <= after_send(port, now, p.PERIOD)
    assert after_send(port, now, p.PERIOD) <= now + 1.1 * p.RECOVER_PERIOD
    # never answered, past the grace (a peer that cannot answer): the steady period
    idle = Port("icv2", "B", p.Window(1000.0), p.PeerTotals(), started=0.0, leads=True)
    assert after_send(idle, p.GRACE + 1, p.PERIOD) >= p.GRACE + 1 + 0.9 * p.PERIOD


@pytest.mark.parametrize(
    ("driver", "tunnels", "probes"),
    [
        ("linux", "kernel", True),
        ("ovs", "kernel", True),
        ("ovs", "ovs", False),
        ("fake", "kernel", False),
    ],
)
def test_the_data_planes_with_kernel_tunnel_ports_are_probed(driver, tunnels, probes):
    from types import SimpleNamespace

    from intercloud.drivers import probe as probe_drivers
    from intercloud.drivers.probe.linux import LinuxProber

    cfg = SimpleNamespace(
        agent=SimpleNamespace(name="A"),
        dataplane=SimpleNamespace(driver=driver, prefix="ic", tunnels=tunnels),
    )
    assert isinstance(probe_drivers.load(cfg), LinuxProber) is probes


def test_a_peer_agent_away_or_just_back_explains_its_tunnels_silence_for_a_while():
    back_window = p.expect_within(p.PERIOD) + p.RESUME_ALLOWANCE
    # it answers and was not away lately: a silence is the tunnel's
    assert not p.silence_explained(30.0, None, None)
    # away (restarting?): the silence proves nothing until the grace ends
    assert p.silence_explained(30.0, 0.0, None)
    assert p.silence_explained(30.0, p.PEER_AWAY_GRACE - 1, 5.0)
    assert not p.silence_explained(300.0, p.PEER_AWAY_GRACE, None)
    # back: its prober resumes within a leader's period and a first pass
    assert p.silence_explained(30.0, None, back_window - 1)
    assert not p.silence_explained(300.0, None, back_window)
    # a stretched leader (10,000 ports) gets its own period to resume
    assert p.silence_explained(300.0, None, back_window + 30, period=50.0)
    # silent since after it came back: the tunnel's, at once
    assert not p.silence_explained(3.0, None, 5.0)
