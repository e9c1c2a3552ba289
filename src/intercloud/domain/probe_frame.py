"""The probe frame (domain/probe.py says why it is made so): its layout, how one is built and
stamped, and its strict parser (every frame read is hostile)."""

from __future__ import annotations

import struct
from typing import NamedTuple

ETHERTYPE = 0x88B5
GROUP = bytes.fromhex("0180c2000002")
MAGIC = b"ICPB"
VERSION = 1
REQUEST = 1
ANSWER = 2
# dst, src, ethertype | magic, version, kind, flags, nonce, seq, sent_ns, then what the sender
# (the port's leader) says of its previous probe: acked seq, its round trip (us), its loss (per
# mille over WINDOW), and the leader's steady period in tenths of a second (flag PERIOD_SET,
# else zero: the frame of an agent that probes at the usual PERIOD is version 1's, unchanged)
_HEADER = struct.Struct("!6s6sH4sBBHIIQIIHH")
HEADER_SIZE = _HEADER.size  # 50
MIN_FRAME = 60  # Ethernet's minimum without the FCS: shorter probes are padded to it
MAX_FRAME = 9216 + 14  # a jumbo frame; anything larger is not a probe
ACKED = 0x0001  # flag: the acked fields are set
PERIOD_SET = 0x0002  # flag: the period field is set (the leader's probes are stretched)
MAX_PERIOD_DS = 3000  # a period field above 300 s is not a probe
_KIND_AT = 14 + 4 + 1  # offset of the kind byte
_STAMP = struct.Struct("!HIIQIIHH")  # flags .. period: what changes between two probes
_STAMP_AT = 14 + 4 + 1 + 1


class Ack(NamedTuple):
    """What a leader's request says of its previous probe (for the follower's figures)."""

    seq: int
    rtt_us: int
    loss_permille: int


class Probe(NamedTuple):
    """A parsed probe frame (a tuple: the prober parses hundreds a second)."""

    kind: int
    source: bytes  # the sender's MAC address
    nonce: int
    seq: int
    sent_ns: int
    size: int  # of the whole Ethernet frame
    ack: Ack | None = None
    period: float | None = None  # (a request) the leader's steady period if it said it


def encode(
    kind: int,
    source: bytes,
    nonce: int,
    seq: int,
    sent_ns: int,
    size: int,
    ack: Ack | None = None,
) -> bytes:
    """A probe frame of `size` bytes (MIN_FRAME..MAX_FRAME)."""
    if kind not in (REQUEST, ANSWER):
        raise ValueError(f"probe kind must be {REQUEST} or {ANSWER}, got {kind}")
    if not MIN_FRAME <= size <= MAX_FRAME:
        raise ValueError(f"probe size must be in {MIN_FRAME}..{MAX_FRAME} bytes, got {size}")
    if len(source) != 6:
        raise ValueError("probe source must be a 6-byte MAC address")
    frame = bytearray(size)
    _HEADER.pack_into(
        frame, 0, GROUP, source, ETHERTYPE, MAGIC, VERSION, kind, 0, 0, 0, 0, 0, 0, 0, 0
    )
    frame[_KIND_AT] = kind
    return stamp(frame, nonce, seq, sent_ns, ack)


def stamp(
    template: bytearray,
    nonce: int,
    seq: int,
    sent_ns: int,
    ack: Ack | None = None,
    period: float | None = None,
) -> bytes:
    """A frame made by `encode` with another nonce, sequence number, send time, ack and period
    (the prober sends hundreds a second: this is what changes between two probes of one
    port). `period` (seconds, 0.1..300) goes out only when given."""
    flags, acked, rtt, loss, tenths = 0, 0, 0, 0, 0
    if ack is not None:
        flags = ACKED
        acked, rtt, loss = ack.seq & 0xFFFFFFFF, min(ack.rtt_us, 0xFFFFFFFF), ack.loss_permille
    if period is not None:
        flags |= PERIOD_SET
        tenths = min(max(round(period * 10), 1), MAX_PERIOD_DS)
    _STAMP.pack_into(
        template,
        _STAMP_AT,
        flags,
        nonce & 0xFFFFFFFF,
        seq & 0xFFFFFFFF,
        sent_ns & 0xFFFFFFFFFFFFFFFF,
        acked,
        max(rtt, 0),
        min(max(loss, 0), 1000),
        tenths,
    )
    return bytes(template)


def parse(frame: bytes) -> Probe | None:
    """The probe in `frame`, or None for anything else: too short or too long, not to the probe
    group or ethertype, another magic or version, an unknown kind or flag, a loss over 1000 per
    mille, a period of zero or over 300 s, or one not flagged, padding that is not zeros, a
    source address that is multicast."""
    size = len(frame)
    if not MIN_FRAME <= size <= MAX_FRAME:
        return None
    (
        dst,
        src,
        ethertype,
        magic,
        version,
        kind,
        flags,
        nonce,
        seq,
        sent_ns,
        acked,
        rtt,
        loss,
        tenths,
    ) = _HEADER.unpack_from(frame)
    if dst != GROUP or ethertype != ETHERTYPE or magic != MAGIC or version != VERSION:
        return None
    if kind not in (REQUEST, ANSWER) or flags & ~(ACKED | PERIOD_SET) or loss > 1000 or src[0] & 1:
        return None
    if not flags & ACKED and (acked or rtt or loss):
        return None
    if (tenths != 0) != bool(flags & PERIOD_SET) or tenths > MAX_PERIOD_DS:
        return None
    if frame.count(0, HEADER_SIZE) != size - HEADER_SIZE:
        return None
    ack = Ack(acked, rtt, loss) if flags & ACKED else None
    period = tenths / 10 if tenths else None
    return Probe(kind, bytes(src), nonce, seq, sent_ns, size, ack, period)


def answer(frame: bytes, source: bytes) -> bytes | None:
    """The answer to a request frame (same size, kind ANSWER, from `source`); None if `frame`
    is not a valid request."""
    probe = parse(frame)
    if probe is None or probe.kind != REQUEST or len(source) != 6:
        return None
    out = bytearray(frame)
    out[6:12] = source
    out[_KIND_AT] = ANSWER
    return bytes(out)
