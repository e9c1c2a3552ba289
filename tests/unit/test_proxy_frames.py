"""The signed frames of a streamed proxied answer (federation/frames.py) against hostile bytes:
every way of altering, cutting, reordering or inflating the stream is a BrokenStream, and no
byte is given before the frame that carries it verified."""

from __future__ import annotations

import time

import pytest

from intercloud.federation import frames
from intercloud.federation.frames import CHUNK, BrokenStream, Reader, Writer

KEY = "k" * 32
ARGS = ("B", "A", "ab" * 16, "sig")


def stream(body: bytes = b"hello world", status: int = 200, key: str = KEY) -> list[bytes]:
    w = Writer(key, *ARGS)
    return [w.head(status, [("content-type", "application/json")]), *w.data(body), w.end()]


def read(pieces, limit: int = 10 * CHUNK, args=ARGS, deadline: float | None = None):
    r = Reader(pieces, KEY, *args, limit=limit, deadline=deadline or time.monotonic() + 30)
    head = r.head()
    return head, b"".join(r.body())


def bytewise(pieces: list[bytes]) -> list[bytes]:
    joined = b"".join(pieces)
    return [joined[i : i + 1] for i in range(len(joined))]


def test_a_whole_stream_reads_back_however_it_is_cut():
    body = bytes(range(256)) * 700  # three DATA frames
    pieces = stream(body)
    assert len(pieces) == 5
    assert read(pieces) == ((200, [["content-type", "application/json"]]), body)
    assert read([b"".join(pieces)])[1] == body
    assert read(bytewise(stream(b"abc")))[1] == b"abc"
    assert read(stream(b""))[1] == b""


def test_no_data_frame_is_larger_than_a_chunk():
    pieces = stream(b"x" * (CHUNK * 2 + 1))
    assert [len(p) - 5 - 32 for p in pieces[1:-1]] == [CHUNK, CHUNK, 1]


def broken(pieces, match: str, **kw) -> None:
    with pytest.raises(BrokenStream, match=match):
        read(pieces, **kw)


def test_a_forged_or_altered_frame_is_refused():
    pieces = stream(b"a" * 100)
    forged = stream(b"a" * 100, key="x" * 32)
    broken([forged[0], *pieces[1:]], "bad frame signature")  # a head with another key
    broken([pieces[0], forged[1], pieces[2]], "bad frame signature")
    altered = bytearray(pieces[1])
    altered[10] ^= 1
    broken([pieces[0], bytes(altered), pieces[2]], "bad frame signature")
    flipped = bytearray(pieces[1])
    flipped[-1] ^= 1  # the mac itself
    broken([pieces[0], bytes(flipped), pieces[2]], "bad frame signature")


def test_a_stream_made_for_another_request_is_refused():
    broken(stream(), "bad frame signature", args=("B", "A", "cd" * 16, "sig"))
    broken(stream(), "bad frame signature", args=("B", "A", "ab" * 16, "other"))
    broken(stream(), "bad frame signature", args=("C", "A", "ab" * 16, "sig"))


def test_reordered_dropped_or_repeated_frames_are_refused():
    w = Writer(KEY, *ARGS)
    head = w.head(200, [])
    one, two = [*w.data(b"1" * CHUNK), *w.data(b"2")]
    end = w.end()
    assert read([head, one, two, end])[1] == b"1" * CHUNK + b"2"
    broken([head, two, one, end], "bad frame signature")
    broken([head, two, end], "bad frame signature")
    broken([head, one, one, two, end], "bad frame signature")
    broken([one, head, two, end], "no head first|bad frame signature")


def test_a_cut_stream_is_refused():
    pieces = stream(b"a" * 100)
    broken(pieces[:-1], "cut before its end")  # no END
    broken([pieces[0], pieces[1][:-3]], "cut before its end")  # mid-frame
    broken([], "cut before its end")
    r = Reader(pieces[:1], KEY, *ARGS, limit=1000, deadline=time.monotonic() + 9)
    assert r.head()[0] == 200  # a head alone is no answer: its body never ends
    with pytest.raises(BrokenStream, match="cut before its end"):
        list(r.body())


def test_an_end_with_a_wrong_length_or_bytes_after_it_are_refused():
    w = Writer(KEY, *ARGS)
    head, data = w.head(200, []), list(w.data(b"abc"))
    w.total = 2  # an END that lies about the length (signed all the same)
    broken([head, *data, w.end()], "length at its end differs")
    pieces = stream(b"abc")
    broken([*pieces, b"x"], "bytes after its end")
    broken([*pieces, pieces[-1]], "bytes after its end")


def test_oversize_frames_and_bodies_are_refused_before_they_are_read():
    pieces = stream(b"abc")
    huge = frames.DATA + (CHUNK + 1).to_bytes(4, "big")
    broken([pieces[0], huge], "bad frame kind or length")
    broken([pieces[0], b"Z" + (1).to_bytes(4, "big") + b"x" + b"0" * 32], "bad frame kind")
    broken([frames.HEAD + (frames.MAX_HEAD + 1).to_bytes(4, "big")], "bad frame kind or length")
    broken(stream(b"x" * 1000), "body larger than 999 bytes", limit=999)


def test_an_empty_or_misplaced_frame_kind_is_refused():
    w = Writer(KEY, *ARGS)
    head = w.head(200, [])
    second = w.head(200, [])  # a second head, properly chained
    broken([head, second, w.end()], "frame out of order")
    w = Writer(KEY, *ARGS)
    raw = w._frame(frames.HEAD, b"[1, 2]")  # signed, but not a head object
    broken([raw], "no head first")


def test_the_deadline_holds_between_pieces():
    def slow():
        yield from stream(b"abc")[:2]
        time.sleep(0.05)
        yield b""

    broken(slow(), "timeout", deadline=time.monotonic() + 0.02)


def test_no_byte_is_given_before_its_frame_verified():
    pieces = stream(b"a" * 100)
    bad = bytearray(pieces[1])
    bad[-1] ^= 1
    r = Reader([pieces[0], bytes(bad)], KEY, *ARGS, limit=1000, deadline=time.monotonic() + 9)
    r.head()
    got = []
    with pytest.raises(BrokenStream):
        for piece in r.body():
            got.append(piece)
    assert got == []
