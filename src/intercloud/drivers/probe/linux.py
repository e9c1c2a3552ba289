"""The tunnel prober of the Linux data plane: ONE packet socket for the probe ethertype (the
kernel hands it probe frames only) in the agent's network namespace, and one thread that sends
each tracked tunnel port it leads a request every PERIOD while it answers (spread: 1,000 ports
make ~200 small sends a second in batches every 0.1 s, not a burst), looks again FAST_PERIOD
after each to re-probe it at once if unanswered (ports.py: when), reads the answers and the
peers' requests (answered back out of the port they came in on; on a port it follows, the
request also confirms its previous answer, or shows it lost), and judges every port twice a
second. What a probe is and what its answers mean: domain/probe.py.

Every frame read is hostile: only frames that came in (never our own going out) on one of our
own tunnel ports (the prefix's VXLAN devices), that parse strictly, are looked at; an answer
counts only if it carries our run's nonce and the sequence number of a probe in flight on that
very port; a request is answered at most ANSWER_RATE times a second per port, with a frame of
its own size: nothing a peer sends makes us send more than we received."""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import random
import secrets
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping

from intercloud.domain import naming
from intercloud.domain import probe as p
from intercloud.drivers.probe.base import Prober
from intercloud.drivers.probe.packet import (
    ANCILLARY,
    PACKET_OUTGOING,
    AnswerRate,
    arrival,
    mac_of,
    open_socket,
)
from intercloud.drivers.probe.ports import Budget, Check, Port, after_send, next_look
from intercloud.errors import DriverError

log = logging.getLogger("intercloud.probe")

JUDGE_EVERY = 0.5  # seconds between two judgements of every port
BATCH = 0.1  # a wake-up sends every probe due this soon: <= 10 wake-ups a second to send
MAX_BATCH = 256  # frames read per wake-up before the schedule gets its turn
CHECK_BIT = 0x80000000  # sequence numbers of check() probes (the periodic ones stay below)


class LinuxProber(Prober):
    """The Prober of kernel VXLAN tunnel ports."""

    available = False
    unavailable_reason: str | None = "not started"

    def __init__(
        self,
        prefix: str,
        me: str = "",
        *,
        period: float = p.PERIOD,
        budget: float = p.BUDGET,
        mono: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.prefix = naming.check_prefix(prefix)
        self.me = me  # this agent's name: who leads a port (domain/probe.leads)
        self.base_period, self.budget = period, budget
        self.period: float = period  # the steady period now: stretched past the budget's ports
        self._tunnel_prefix = prefix + "v"
        self._mono, self._wall = mono, wall
        self._nonce = secrets.randbits(32)
        self._lock = threading.Lock()
        self._ports: dict[str, Port] = {}
        self._totals: dict[str, p.PeerTotals] = {}
        self._schedule: list[tuple[float, int, Port]] = []  # (due, tie-breaker, port): a heap
        self._order = itertools.count()
        self._checks: dict[tuple[str, int], Check] = {}
        self._check_seq = itertools.count(1)
        self._rate = AnswerRate()
        self._sends = Budget(budget, max(1.0, budget * BATCH), mono())
        self._drained_at = mono()  # every frame that arrived before this was read
        self._sock: socket.socket | None = None
        self._wake: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life ------------------------------------------------------------------------------

    def start(self) -> None:
        try:
            sock = open_socket()
        except OSError as exc:  # no CAP_NET_RAW: the agent works on, without probes
            self.unavailable_reason = f"cannot open a packet socket: {exc.strerror or exc}"
            log.warning("tunnel probes off: %s", self.unavailable_reason)
            return
        self._sock, self._wake = sock, os.pipe()
        self.available, self.unavailable_reason = True, None
        self._thread = threading.Thread(target=self._run, name="prober", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._wake is not None:
            os.write(self._wake[1], b"x")
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()
        if self._wake is not None:
            for fd in self._wake:
                os.close(fd)
        self._sock = self._wake = self._thread = None
        self.available, self.unavailable_reason = False, "stopped"

    # -- what the reconciler, the API and the metrics ask -----------------------------------

    def track(self, ports: Mapping[str, str]) -> None:
        now, wall = self._mono(), self._wall()
        with self._lock:
            for name in set(self._ports) - set(ports):
                del self._ports[name]
            for name, peer in ports.items():
                totals = self._totals.get(peer)
                if totals is None:
                    totals = self._totals[peer] = p.PeerTotals()
                port = self._ports.get(name)
                if port is not None and port.peer == peer:
                    continue
                leads = p.leads(self.me, peer)
                port = Port(name, peer, p.Window(wall), totals, now, leads)
                self._ports[name] = port
                if leads:
                    port.window.period = self.period
                    due = now + random.uniform(0, p.FAST_PERIOD)  # 1,000 new ports: no burst
                    heapq.heappush(self._schedule, (due, next(self._order), port))
            self._stretch()
        if self._wake is not None:
            os.write(self._wake[1], b"x")  # the schedule changed: the thread looks again

    def _stretch(self) -> None:
        """The steady period for the ports we lead now (domain/probe.steady_period); under the
        lock."""
        leading = sum(1 for port in self._ports.values() if port.leads)
        period = p.steady_period(leading, self.budget, self.base_period)
        if period == self.period:
            return
        log.info("tunnel probes: %d ports led, steady period %.1f s", leading, period)
        self.period = period
        for port in self._ports.values():
            if port.leads:
                port.window.period = period

    def health(self, port: str) -> p.TunnelHealth | None:
        with self._lock:
            found = self._ports.get(port)
            return found.window.health() if found is not None else None

    def verdict(self, port: str) -> p.Verdict | None:
        wall = self._wall()
        with self._lock:
            found = self._ports.get(port)
            return found.window.verdict(wall) if found is not None else None

    def peers(self) -> dict[str, p.PeerProbes]:
        now = self._wall()
        with self._lock:
            by_peer: dict[str, list[p.TunnelHealth]] = {}
            for port in self._ports.values():
                by_peer.setdefault(port.peer, []).append(port.window.health())
        return {peer: p.summarize(peer, hs, now) for peer, hs in sorted(by_peer.items())}

    def totals(self) -> dict[str, p.PeerTotals]:
        wall = self._wall()
        with self._lock:
            counts: dict[str, dict[p.Verdict, int]] = {peer: {} for peer in self._totals}
            for port in self._ports.values():  # judged now, at scrape time, not every second
                verdict, per_peer = port.window.verdict(wall), counts[port.peer]
                per_peer[verdict] = per_peer.get(verdict, 0) + 1
            return {
                peer: p.PeerTotals(
                    t.sent, t.answered, t.lost, list(t.rtt_counts), t.rtt_sum, counts[peer]
                )
                for peer, t in self._totals.items()
            }

    def check(self, port: str, size: int, timeout: float) -> float | None:
        """One probe frame whose Ethernet frame is `size` bytes into tunnel port `port`; the
        RTT in seconds of the peer agent's answer, or None if none came within `timeout`.
        DriverError: probes are off, or `port` is not one of our tunnel ports."""
        if not p.MIN_FRAME <= size <= p.MAX_FRAME:
            raise DriverError(f"probe size must be in {p.MIN_FRAME}..{p.MAX_FRAME}, got {size}")
        sock = self._sock
        if sock is None:
            raise DriverError(f"tunnel probes are off: {self.unavailable_reason}")
        mac = self._mac(port) if self._ours(port) else None
        if mac is None:
            raise DriverError(f"{port!r} is not a tunnel port of this agent")
        seq = CHECK_BIT | (next(self._check_seq) & 0x7FFFFFFF)
        pending = self._checks[(port, seq)] = Check(size, self._mono())
        try:
            frame = p.encode(p.REQUEST, mac, self._nonce, seq, time.time_ns(), size)
            try:
                sock.sendto(frame, (port, p.ETHERTYPE))
            except OSError as exc:
                raise DriverError(f"probe into {port}: {exc.strerror or exc}") from exc
            pending.done.wait(max(timeout, 0.0))
            return pending.rtt
        finally:
            self._checks.pop((port, seq), None)

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        judge_at = self._mono() + JUDGE_EVERY
        while not self._stop.is_set():
            try:
                judge_at = self._turn(judge_at)
            except Exception:  # one bad turn must not end the probes
                log.exception("tunnel prober")
                self._stop.wait(0.5)

    def _turn(self, judge_at: float) -> float:
        assert self._sock is not None and self._wake is not None
        now = self._mono()
        with self._lock:
            due = judge_at
            if self._schedule:  # the first in line, once the budget lets it go
                due = max(self._schedule[0][0], self._sends.ready_at(now))
        timeout = max(0.0, min(due, judge_at) - now)
        sock_fd, wake_fd = self._sock.fileno(), self._wake[0]
        readable, _, _ = select.select([sock_fd, wake_fd], [], [], timeout)
        if wake_fd in readable:
            os.read(wake_fd, 512)
        if sock_fd in readable:
            self._receive(self._sock)
        else:  # nothing came meanwhile: every frame that arrived was read
            self._drained_at = self._mono()
        now = self._mono()
        if due <= now:
            self._send_due(now, now + BATCH)
        if now >= judge_at:
            self._judge(now)
            judge_at = now + JUDGE_EVERY
        return judge_at

    def _receive(self, sock: socket.socket) -> None:
        with self._lock:
            changed = self._receive_batch(sock)
        if changed:
            self._changed()

    def _receive_batch(self, sock: socket.socket) -> bool:
        """Read what is queued (MAX_BATCH at most); whether a silent port answered again. A
        frame counts from when it arrived (the kernel's time stamp), however late it is read."""
        changed, offset = False, self._wall() - self._mono()  # epoch seconds - monotonic ones
        for _ in range(MAX_BATCH):
            asked_at = self._mono()
            try:
                frame, ancillary, _, addr = sock.recvmsg(p.MAX_FRAME + 1, ANCILLARY)
            except BlockingIOError:
                self._drained_at = asked_at
                break
            except OSError as exc:  # e.g. the device went away under a queued frame
                log.debug("probe socket: %s", exc)
                continue
            wall = arrival(ancillary) or asked_at + offset
            mono = min(wall - offset, asked_at)
            # the queue is in order of arrival: all that came before this one has been read
            self._drained_at = max(self._drained_at, mono)
            ifname, pkttype = addr[0], addr[2]
            if pkttype == PACKET_OUTGOING or not self._ours(ifname):
                continue
            probe = p.parse(frame)
            if probe is None:
                continue
            if probe.kind == p.REQUEST:
                sent = self._answer(sock, ifname, frame, asked_at)
                if not probe.seq & CHECK_BIT:
                    changed |= self._followed(ifname, probe, sent, mono, wall)
            elif probe.nonce == self._nonce:
                changed |= self._answered(ifname, probe, mono, wall)
        return changed

    def _read_until(self, now: float) -> float:
        """The time up to which every frame that arrived was read (`now` at most): a probe in
        flight is lost only if its answer could have been read by then."""
        return min(now, self._drained_at)

    def _ours(self, ifname: str) -> bool:
        return (
            len(ifname) <= naming.IFNAME_MAX
            and ifname.startswith(self._tunnel_prefix)
            and ifname[len(self._tunnel_prefix) :].isdigit()
        )

    def _answer(self, sock: socket.socket, ifname: str, frame: bytes, now: float) -> bool:
        """Answer a request (within the port's rate); whether the answer went out."""
        if not self._rate.take(ifname, now):
            return False
        port = self._ports.get(ifname)
        mac = port.mac if port is not None and port.mac else self._mac(ifname)
        reply = p.answer(frame, mac) if mac else None
        if reply is None:
            return False
        try:
            sock.sendto(reply, (ifname, p.ETHERTYPE))
        except OSError:  # the port went down: the peer sees a loss
            return False
        return True

    def _followed(
        self, ifname: str, probe: p.Probe, answered: bool, mono: float, wall: float
    ) -> bool:
        """A leader's request on a port we follow: it says whether our previous answer arrived
        (and the round trip the leader measured); our answer to it waits for the next one.
        Whether the port was silent until now."""
        port = self._ports.get(ifname)
        if port is None or port.leads:
            return False
        window = port.window
        if probe.ack is not None:
            rtt = window.answer(probe.ack.seq, mono, wall, probe.ack.rtt_us / 1e6)
            if rtt is not None:
                port.totals.observe(rtt)
        window.period = probe.period or p.PERIOD
        if window.pending:  # answers the leader had not had when it sent this one: lost
            port.totals.lost += window.lost_before(probe.seq)
            # (and any left from a leader's former run, whose numbers started again)
            port.totals.lost += window.expire(mono, p.follow_timeout(window.period))
        window.expect(wall + p.expect_within(window.period))
        if answered:
            window.sent_one(probe.seq, mono)
            port.totals.sent += 1
        return self._rejudge(port, wall)

    def _rejudge(self, port: Port, wall: float) -> bool:
        """Judge `port` again after what it just told; whether its silence changed (said at
        once: a tunnel that answers again, or that a follower sees lost, need not wait)."""
        silent = port.window.verdict(wall) is p.Verdict.SILENT
        if silent == port.silent:
            return False
        port.silent = silent
        return True

    def _answered(self, ifname: str, probe: p.Probe, mono: float, wall: float) -> bool:
        """Record an answer to one of our probes; whether its port was silent until now."""
        if probe.seq & CHECK_BIT:
            pending = self._checks.get((ifname, probe.seq))
            if pending is not None and pending.size == probe.size and pending.rtt is None:
                pending.rtt = mono - pending.sent_at
                pending.done.set()
            return False
        port = self._ports.get(ifname)
        if port is None:
            return False
        if not port.leads:
            return False
        sent_at = port.window.pending.get(probe.seq)
        if sent_at is not None and mono - sent_at > p.TIMEOUT:  # arrived late: lost
            port.totals.lost += port.window.expire(mono, p.TIMEOUT)
        missed = port.window.missed
        rtt = port.window.answer(probe.seq, mono, wall)
        if rtt is None:
            return False
        port.acked_seq = probe.seq
        port.totals.observe(rtt)
        if missed or port.window.answered == 1:  # (again): the next request tells the follower
            port.steady_at = min(port.steady_at, mono + p.FAST_PERIOD)
        return self._rejudge(port, wall)

    def _send_due(self, now: float, horizon: float) -> None:
        sock = self._sock
        assert sock is not None
        with self._lock:
            while self._schedule and self._schedule[0][0] <= horizon:
                _, _, port = self._schedule[0]
                if self._ports.get(port.name) is not port:
                    heapq.heappop(self._schedule)
                    continue  # no longer tracked (or toward another peer: a new port)
                due = next_look(port, horizon)
                if due is None:
                    if not self._sends.take(now):
                        break  # over budget: it stays first in line
                    self._send(sock, port, now)
                    due = after_send(port, now, self.period)
                heapq.heapreplace(self._schedule, (due, next(self._order), port))

    def _send(self, sock: socket.socket, port: Port, now: float) -> None:
        if port.template is None:
            port.mac = self._mac(port.name)
            if port.mac is None:
                return  # not there (yet): the reconciler says why in the status
            port.template = bytearray(p.encode(p.REQUEST, port.mac, 0, 0, 0, p.MIN_FRAME))
        if port.window.pending:
            port.totals.lost += port.window.expire(self._read_until(now), p.TIMEOUT)
        port.seq = seq = (port.seq + 1) & 0x7FFFFFFF
        port.window.sent_one(seq, now)
        port.totals.sent += 1
        period = self.period if self.period != p.PERIOD else None  # said only when stretched
        try:
            ack = port.window.ack(port.acked_seq)
            frame = p.stamp(port.template, self._nonce, seq, time.time_ns(), ack, period)
            sock.sendto(frame, (port.name, p.ETHERTYPE))
        except OSError as exc:  # down or gone: the probe is lost, which is the truth
            log.debug("probe into %s: %s", port.name, exc)
            port.template = port.mac = None  # a re-created device has another address

    def _judge(self, now: float) -> None:
        """Which ports turned silent or answer again (domain/probe.py's verdict, inlined: it
        looks at every port twice a second); the reconciler is woken to say so. Judged as of
        the last frame read: a frame that waits in the socket is not a silence."""
        read_until, changed = self._read_until(now), False
        seen = self._wall() - (now - read_until)
        lead_edge, misses = seen - p.silent_after(self.period), p.MISSES
        with self._lock:
            for port in self._ports.values():
                window = port.window
                if window.pending and (port.leads or port.silent):
                    timeout = p.TIMEOUT if port.leads else p.follow_timeout(window.period)
                    port.totals.lost += window.expire(read_until, timeout)
                last, expect_by = window.last_answer_at, window.expect_by
                edge = lead_edge if port.leads else seen - p.silent_after(window.period)
                silent = last is not None and (
                    window.missed >= misses
                    or last < edge
                    or (expect_by is not None and seen > expect_by)
                )
                if silent != port.silent:
                    port.silent, changed = silent, True
            self._rate.keep_only(self._ports)  # ports gone: their buckets too
        if changed:
            self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def _mac(self, ifname: str) -> bytes | None:
        return mac_of(self._sock, ifname) if self._sock is not None else None
