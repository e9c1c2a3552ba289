"""Probes through the tunnels: what one tunnel port's probes say (window statistics and
verdict); the frame and its strict parser are in domain/probe_frame.py. Pure: the socket and
the schedule are the driver's (drivers/probe/linux.py, ports.py).

A link is up when the peer's API answers and its SA is up; that does not prove tenant frames
pass (a WAN may drop the VXLAN packets of one VNI). So every agent sends, into each tunnel port
it built, a small Ethernet frame that the peer's agent answers at layer 2 through the same
tunnel:

- destination 01:80:c2:00:00:02 (IEEE 802.3 slow protocols): a Linux bridge never forwards it
  (it is in the bridge's restricted group mask: no `group_fwd_mask` can open it) and hands it to
  the port it came in on, where the agent's socket reads it; Open vSwitch's NORMAL action drops
  01:80:c2:00:00:00-0f (`forward-bpdu` false). So a probe never reaches a VM, and a relay never
  passes it on: it tests exactly one tunnel.
- ethertype 0x88B5 (IEEE 802 local experimental): the agent's one packet socket is opened for
  that protocol, so the kernel hands it probe frames only, without a filter.
- payload: magic, version, kind (request / answer), flags, a nonce of the sender's run, a
  sequence number, the send time, the ack of the previous probe (sequence number, round trip
  in microseconds, loss in per mille), then zero padding up to the size asked for. The answer
  is the request with its kind and source address changed, the same size: a probe as large as
  the VMs' MTU tests that MTU both ways.

Who answers: every agent answers every request arriving on one of its own tunnel ports, back out
of that port, at most as many frames as it received (and at most ANSWER_RATE a second per
port). Who probes: one side of each tunnel, the agent whose name sorts first (`leads`); its
request also says whether the previous one was answered, with its round trip and the loss, so
the other side (which follows: it only answers) learns from the leader's next request that its
own answer arrived. Both sides' statuses tell their own truth, for 2 frames a tunnel per PERIOD
instead of 4 if each side probed (that halves the prober's CPU).

When: the cost follows the frame count (the kernel's send path is most of it), detection does
not have to. A port that answers is probed every PERIOD (5 s, spread +-10 %); a probe left
unanswered FAST_PERIOD later makes the port suspect, and it is re-probed every FAST_PERIOD
until it answers; MISSES probes lost in a row (each TIMEOUT late) since the last answer make
it SILENT, which is then re-probed every RECOVER_PERIOD, so a tunnel that passes frames again
is seen within a second or so. Worst case from the last answer: 1.1 PERIOD + (MISSES - 1)
FAST_PERIOD + TIMEOUT + a judgement (0.5 s) = 8 s, within the 10 s asked; one lost frame
costs one extra frame, not a verdict. The follower learns the same from the requests: the
leader's next request says which answer it had last; answers it sent before that request
and not acked are lost (the leader re-probed without having them), MISSES in a row make it
SILENT; and a request is expected within EXPECT_WITHIN (a steady period, its spread and room
for re-probes: 7 s) of the last, or the port is SILENT too (the requests stopped coming). A
leader that hears an answer after misses (or its first) sends the next request within
FAST_PERIOD, so the follower does not wait a steady period to learn it. Measured at 1,000
tunnel ports (`python -m bench --only probes`): see README's "Probes through the tunnels".

Budget: an agent sends at most BUDGET requests a second in all, whatever its tunnels do (a
token bucket: when it is empty, the ports due longest go first). Up to BUDGET * STEADY_SHARE *
PERIOD ports led (1,000) nothing changes; past that the steady period stretches so that the
steady probes take STEADY_SHARE of the budget (`steady_period`: 10,000 ports, 50 s), and the
rest is left for re-probes of suspect, new and silent ports. A stretched leader says its
period in each request (flag PERIOD_SET), so that its followers expect its requests that far
apart (`expect_within`); the backstop (`silent_after`) stretches likewise, and detection
takes about one stretched period. Without a budget, 10,000 silent ports re-probed every
second were 10,000 frames a second: more than the agent could read, so answers came late,
counted as lost, and kept every port silent.

Time: a frame counts from when it arrived (the kernel's receive time stamp), and a probe in
flight counts as lost only once every frame that arrived by its deadline has been read: the
prober shares the agent's interpreter with the reconciler, and a frame that waits to be read
is not a loss.

Verdict of a port: `ANSWERING`, `SILENT` (it answered before, then MISSES probes lost in a
row, or a follower's expected request overdue, or no answer for SILENT_AFTER whatever was
counted: the tunnel black-holes frames; the status turns `error`, "since" the last answer),
`STARTING` (not answered yet, within GRACE of being tracked) and `UNANSWERED` (never
answered). Only SILENT changes an
expansion's status: an agent that restarts must not flap every status to pending while its
first probes fly, and a peer whose data plane cannot answer (Open vSwitch's userspace tunnel
ports are not kernel devices) must not hold expansions pending forever; the figures and the
`intercloud_tunnels_probed{verdict="unanswered"}` metric say it instead. Nor does SILENT change
a status while the peer's agent is away (its API does not answer: restarting?) or just back
(`silence_explained`): its prober stops with it, while the kernel's tunnels carry on.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from enum import Enum

from intercloud.domain.probe_frame import (
    ACKED,
    ANSWER,
    ETHERTYPE,
    GROUP,
    HEADER_SIZE,
    MAGIC,
    MAX_FRAME,
    MIN_FRAME,
    REQUEST,
    VERSION,
    Ack,
    Probe,
    answer,
    encode,
    parse,
    stamp,
)

PERIOD = 5.0  # seconds between two probes of a port that answers (each spread by +-10 %)
FAST_PERIOD = 0.5  # ... while it has not answered yet, or its last probe is unanswered (suspect)
RECOVER_PERIOD = 1.0  # ... once it is silent (it is seen answering again within a second)
TIMEOUT = 1.0  # an answer later than this counts as lost
MISSES = 3  # probes lost in a row since the last answer: the tunnel is silent
# a follower expects the leader's next request this soon after the last (a steady period and
# its spread, and room for MISSES fast re-probes of a request lost on the way)
EXPECT_WITHIN = 1.1 * PERIOD + MISSES * FAST_PERIOD
# no answer for this long (SILENT_AFTER / PERIOD steady periods, if stretched): silent whatever
# was counted (backstop)
SILENT_AFTER = 2.2 * PERIOD
# requests a second an agent sends in all (its frame budget): past BUDGET * STEADY_SHARE / PERIOD
# ports it leads, the steady period stretches (the rest of the budget is for re-probes)
BUDGET = 400.0
STEADY_SHARE = 0.5
MAX_PERIOD = 300.0
GRACE = 10.0  # a new tunnel port may stay unanswered this long before it counts as unanswered
WINDOW = 10  # probes the loss figure is computed over
ANSWER_RATE = 10.0  # answers per second and port a peer may draw from us (burst ANSWER_BURST)
ANSWER_BURST = 20.0
# of the RTT histogram: a LAN's tenth of a millisecond to a slow WAN's second
RTT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def steady_period(leading: int, budget: float = BUDGET, base: float = PERIOD) -> float:
    """The steady period of an agent that leads `leading` tunnel ports: `base`, stretched so
    that the steady probes take STEADY_SHARE of the `budget` (tenths of a second, rounded up,
    at most MAX_PERIOD). 1,000 ports at the defaults: 5 s; 10,000: 50 s."""
    stretched = leading / (budget * STEADY_SHARE)
    if stretched <= base:
        return base
    return min(MAX_PERIOD, -(-stretched * 10 // 1) / 10)


def expect_within(period: float) -> float:
    """(A follower) the leader's next request is due this long after the last (EXPECT_WITHIN
    for a leader at PERIOD)."""
    return 1.1 * period + MISSES * FAST_PERIOD


def follow_timeout(period: float) -> float:
    """(A follower) its answer is confirmed by the leader's next request this late at most."""
    return 1.5 * period + TIMEOUT


# A peer's agent that does not answer its API may be restarting, and its prober with it: the
# silence of its tunnels then proves nothing for this long (one that stays away longer is down,
# and so are its tunnels, as far as we can tell) ...
PEER_AWAY_GRACE = 60.0
# ... nor, once it answers again, before its first pass has tracked its ports (seconds) and a
# leader's period has passed (expect_within)
RESUME_ALLOWANCE = 10.0


def silence_explained(
    quiet_for: float, away_for: float | None, back_for: float | None, period: float = PERIOD
) -> bool:
    """Whether a silent port's silence may be its peer's agent being away rather than the
    tunnel: `quiet_for` seconds since the port's last answer; the peer's API unreachable for
    `away_for` seconds (None: it answers), answering again for `back_for` (None: not away
    lately). An agent restart then flaps no status on its peers; a black hole while the peer
    answers is judged at once, one while it is away after PEER_AWAY_GRACE."""
    if away_for is not None:
        return away_for < PEER_AWAY_GRACE
    if back_for is None or back_for >= quiet_for:  # silent since after it came back
        return False
    return back_for < expect_within(period) + RESUME_ALLOWANCE


def leads(me: str, peer: str) -> bool:
    """Whether this agent probes a tunnel port toward `peer` (the other side follows: it
    answers, and learns from the next request whether its answer arrived)."""
    return me < peer


class Verdict(Enum):
    STARTING = "starting"
    ANSWERING = "answering"
    SILENT = "silent"
    UNANSWERED = "unanswered"


@dataclass(frozen=True)
class TunnelHealth:
    tracked_since: float  # epoch seconds
    last_answer_at: float | None  # epoch seconds of the last answered probe
    rtt_seconds: float | None  # of the last answered probe
    loss: float  # 0..1 over the recent window
    sent: int
    answered: int
    missed: int = 0  # probes (a follower: answers) lost in a row since the last answer
    expect_by: float | None = None  # (a follower) epoch seconds the next request is due by
    period: float = PERIOD  # the leader's steady period


def silent_after(period: float) -> float:
    """No answer for this long is silence, for a leader probing every `period`."""
    return SILENT_AFTER * max(period, PERIOD) / PERIOD


def verdict(health: TunnelHealth, now: float, grace: float = GRACE) -> Verdict:
    """What a port's probes say at `now` (epoch seconds)."""
    h = health
    after = silent_after(h.period)
    return _judge(h.tracked_since, h.last_answer_at, h.missed, h.expect_by, now, after, grace)


def _judge(
    since: float,
    last_answer_at: float | None,
    missed: int,
    expect_by: float | None,
    now: float,
    silent_after: float,
    grace: float,
) -> Verdict:
    if last_answer_at is None:
        return Verdict.STARTING if now - since < grace else Verdict.UNANSWERED
    if missed >= MISSES or now - last_answer_at > silent_after:
        return Verdict.SILENT
    if expect_by is not None and now > expect_by:  # the leader's requests stopped coming
        return Verdict.SILENT
    return Verdict.ANSWERING


@dataclass
class PeerTotals:
    """Every probe to one peer since the agent started (its metrics: never decrease), and its
    tunnels' verdicts as last evaluated."""

    sent: int = 0
    answered: int = 0
    lost: int = 0
    rtt_counts: list[int] = field(default_factory=lambda: [0] * (len(RTT_BUCKETS) + 1))
    rtt_sum: float = 0.0
    verdicts: dict[Verdict, int] = field(default_factory=dict)

    def observe(self, rtt: float) -> None:
        self.answered += 1
        self.rtt_sum += rtt
        self.rtt_counts[bisect_left(RTT_BUCKETS, rtt)] += 1

    def buckets(self) -> list[tuple[str, int]]:
        """Cumulative (upper bound, count) pairs of the RTT histogram, +Inf last."""
        out, total = [], 0
        for bound, n in zip((*(str(b) for b in RTT_BUCKETS), "+Inf"), self.rtt_counts, strict=True):
            total += n
            out.append((bound, total))
        return out


class Window:
    """The probes of one tunnel port: those in flight (seq -> monotonic send time), the outcome
    of the last WINDOW, the last answer. Times: `mono` is monotonic (round trips), `wall` epoch
    seconds (what the status shows)."""

    __slots__ = (
        "answered",
        "expect_by",
        "last_answer_at",
        "missed",
        "outcome_bits",
        "outcomes_kept",
        "pending",
        "period",
        "rtt",
        "sent",
        "since",
        "size",
    )

    def __init__(self, wall: float, size: int = WINDOW) -> None:
        self.since = wall
        self.pending: dict[int, float] = {}
        # the last `size` outcomes, newest in bit 0 (1: answered): a deque of them took
        # ~900 bytes a tunnel port, 9 MB of the agent at 10,000
        self.size = size
        self.outcome_bits = 0
        self.outcomes_kept = 0
        self.last_answer_at: float | None = None
        self.rtt: float | None = None
        self.sent = 0
        self.answered = 0
        self.missed = 0  # lost in a row since the last answer
        self.expect_by: float | None = None  # (a follower) the leader's next request, by then
        self.period = PERIOD  # the leader's steady period (ours, or the one its requests say)

    def sent_one(self, seq: int, mono: float) -> None:
        self.pending[seq] = mono
        self.sent += 1

    def answer(self, seq: int, mono: float, wall: float, rtt: float | None = None) -> float | None:
        """Record the answer to `seq`; its round trip (`rtt` if given: what the leader measured,
        for a follower), or None when no such probe is in flight (late, repeated or forged:
        ignored)."""
        sent_at = self.pending.pop(seq, None)
        if sent_at is None:
            return None
        rtt = max(mono - sent_at if rtt is None else rtt, 0.0)
        self._outcome(True)
        self.last_answer_at, self.rtt = wall, rtt
        self.answered += 1
        self.missed = 0
        return rtt

    def expire(self, mono: float, timeout: float = TIMEOUT) -> int:
        """Count the probes in flight for longer than `timeout` as lost; how many."""
        late = [seq for seq, at in self.pending.items() if mono - at > timeout]
        return self._lose(late)

    def lost_before(self, seq: int) -> int:
        """(A follower) the leader sent request `seq` without having had our answers to the
        earlier ones still in flight: count them as lost; how many."""
        return self._lose([s for s in self.pending if s < seq])

    def expect(self, by: float) -> None:
        """(A follower) the leader's next request is due by `by` (epoch seconds)."""
        self.expect_by = by

    def _lose(self, seqs: list[int]) -> int:
        for seq in seqs:
            del self.pending[seq]
            self._outcome(False)
        self.missed += len(seqs)
        return len(seqs)

    def verdict(self, wall: float, grace: float = GRACE) -> Verdict:
        """verdict(self.health(), wall) without building the health (the prober judges every
        port every second)."""
        after = silent_after(self.period)
        return _judge(
            self.since, self.last_answer_at, self.missed, self.expect_by, wall, after, grace
        )

    def _outcome(self, answered: bool) -> None:
        self.outcome_bits = ((self.outcome_bits << 1) | answered) & ((1 << self.size) - 1)
        self.outcomes_kept = min(self.outcomes_kept + 1, self.size)

    def loss(self) -> float:
        """The share of the last `size` probes that were lost."""
        n = self.outcomes_kept
        return (n - self.outcome_bits.bit_count()) / n if n else 0.0

    def ack(self, seq: int) -> Ack | None:
        """What the next request says of probe `seq` if it was answered (else None)."""
        if not self.answered or self.rtt is None:
            return None
        return Ack(seq, round(self.rtt * 1e6), round(self.loss() * 1000))

    def health(self) -> TunnelHealth:
        loss = self.loss()
        return TunnelHealth(
            self.since,
            self.last_answer_at,
            self.rtt,
            loss,
            self.sent,
            self.answered,
            self.missed,
            self.expect_by,
            self.period,
        )


@dataclass(frozen=True)
class PeerProbes:
    """One peer's tunnels as the probes see them (the status and the topology page)."""

    peer: str
    tunnels: int
    answering: int
    silent: int
    unanswered: int  # starting ones included
    rtt_seconds: float | None  # median of the tunnels' last round trips
    loss: float  # mean over the tunnels


def summarize(peer: str, healths: list[TunnelHealth], now: float) -> PeerProbes:
    counts = {v: 0 for v in Verdict}
    for h in healths:
        counts[verdict(h, now)] += 1
    rtts = sorted(h.rtt_seconds for h in healths if h.rtt_seconds is not None)
    return PeerProbes(
        peer=peer,
        tunnels=len(healths),
        answering=counts[Verdict.ANSWERING],
        silent=counts[Verdict.SILENT],
        unanswered=counts[Verdict.UNANSWERED] + counts[Verdict.STARTING],
        rtt_seconds=rtts[len(rtts) // 2] if rtts else None,
        loss=sum(h.loss for h in healths) / len(healths) if healths else 0.0,
    )


__all__ = [
    "ACKED",
    "ANSWER",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_FRAME",
    "MIN_FRAME",
    "VERSION",
    "Ack",
    "stamp",
    "ETHERTYPE",
    "GROUP",
    "REQUEST",
    "PeerProbes",
    "PeerTotals",
    "Probe",
    "TunnelHealth",
    "Verdict",
    "Window",
    "answer",
    "encode",
    "expect_within",
    "follow_timeout",
    "parse",
    "silent_after",
    "steady_period",
    "summarize",
    "verdict",
]
