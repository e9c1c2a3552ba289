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
# mille over WINDOW), a reserved zero
_HEADER = struct.Struct("!6s6sH4sBBHIIQIIHH")
HEADER_SIZE = _HEADER.size  # 50
MIN_FRAME = 60  # Ethernet's minimum without the FCS: shorter probes are padded to it
MAX_FRAME = 9216 + 14  # a jumbo frame; anything larger is not a probe
ACKED = 0x0001  # flag: the acked fields are set
_KIND_AT = 14 + 4 + 1  # offset of the kind byte
_STAMP = struct.Struct("!HIIQIIH")  # flags .. loss: what changes between two probes
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


def stamp(template: bytearray, nonce: int, seq: int, sent_ns: int, ack: Ack | None = None) -> bytes:
    """A frame made by `encode` with another nonce, sequence number, send time and ack (the
    prober sends hundreds a second: this is what changes between two probes of one port)."""
    flags, acked, rtt, loss = 0, 0, 0, 0
    if ack is not None:
        flags = ACKED
        acked, rtt, loss = ack.seq & 0xFFFFFFFF, min(ack.rtt_us, 0xFFFFFFFF), ack.loss_permille
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
    )
    return bytes(template)


def parse(frame: bytes) -> Probe | None:
    """The probe in `frame`, or None for anything else: too short or too long, not to the probe
    group or ethertype, another magic or version, an unknown kind or flag, a loss over 1000 per
    mille, reserved bytes or padding that are not zeros, a source address that is multicast."""
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
        zero,
    ) = _HEADER.unpack_from(frame)
    if dst != GROUP or ethertype != ETHERTYPE or magic != MAGIC or version != VERSION:
        return None
    if kind not in (REQUEST, ANSWER) or flags & ~ACKED or zero or loss > 1000 or src[0] & 1:
        return None
    if not flags and (acked or rtt or loss):
        return None
    if frame.count(0, HEADER_SIZE) != size - HEADER_SIZE:
        return None
    ack = Ack(acked, rtt, loss) if flags else None
    return Probe(kind, bytes(src), nonce, seq, sent_ns, size, ack)


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
