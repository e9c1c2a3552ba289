"""An answer's head waits for its body and both go out in one write (api/http_protocol.py);
the token of a fast read is read as api/auth.py reads it (api/fast_reads.py)."""

from __future__ import annotations

import asyncio

from intercloud.api.fast_reads import bearer
from intercloud.api.http_protocol import HeldHeadTransport

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class Recording:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info {name}"


def held() -> tuple[HeldHeadTransport, Recording, asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    under = Recording()
    return HeldHeadTransport(under, loop), under, loop  # type: ignore[arg-type]


def turn(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_until_complete(asyncio.sleep(0))


def test_head_and_body_go_out_in_one_write():
    t, under, loop = held()
    t.write(HEAD)
    assert under.writes == []
    t.write(b"{}")
    assert under.writes == [HEAD + b"{}"]
    turn(loop)  # the head's own flush finds nothing left
    assert under.writes == [HEAD + b"{}"]
    loop.close()


def test_a_head_without_a_body_goes_out_on_the_next_turn():
    t, under, loop = held()
    t.write(HEAD)  # a HEAD request's answer: no body follows
    turn(loop)
    assert under.writes == [HEAD]
    loop.close()


def test_close_sends_what_is_held_first_and_other_writes_pass():
    t, under, loop = held()
    t.write(b"a chunk of a body")
    assert under.writes == [b"a chunk of a body"]
    t.write(HEAD)
    t.close()
    assert under.writes == [b"a chunk of a body", HEAD] and under.closed
    assert t.get_extra_info("peername") == "info peername"  # the rest is the transport's
    loop.close()


def test_bearer_reads_both_headers_as_auth_does():
    assert bearer([(b"Authorization", b"Bearer abc ")]) == "abc"
    assert bearer([(b"authorization", b"bearer abc")]) == "abc"
    assert bearer([(b"x-auth-token", b"ks")]) == "ks"
    assert bearer([(b"authorization", b"Basic xyz"), (b"X-Auth-Token", b"ks")]) == "ks"
    assert bearer([(b"authorization", b"Bearer ")]) == ""
    assert bearer([]) == ""
