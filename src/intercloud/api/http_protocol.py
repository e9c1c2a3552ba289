"""uvicorn's HTTP protocol (httptools), with an answer's head and body in one write.

uvicorn writes a response's status line and headers when the app sends `http.response.start`,
then its body in a second write: over TLS, two records, two encryptions and two send() calls,
each of which runs the receiver's side of the loopback or veth path too: the two writes were
24 % of the event loop's time under 50 reading clients (py-spy), and one write instead gave
1.3-1.4x the kept reads per second (wrk, runs alternated). Here the head is held until the
next write, which carries it; a head that no write follows in the same turn of the loop (a HEAD
request, a streamed answer's first chunk still coming) goes out on the loop's next turn.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeldHeadTransport:
    """The connection's transport, but a write that is an answer's head waits for the next."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held is not None:
            data, self._held = self._held + bytes(data), None
        elif _is_head(data):
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        if self._held is not None:
            data, self._held = self._held, None
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # everything else is the transport's own
        return getattr(self._transport, name)


def _is_head(data: bytes | bytearray | memoryview) -> bool:
    return bytes(data[:9]) == b"HTTP/1.1 " and bytes(data[-4:]) == b"\r\n\r\n"


class OneWriteHttpProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(HeldHeadTransport(transport, self.loop))  # type: ignore[arg-type]


__all__ = ["HeldHeadTransport", "OneWriteHttpProtocol"]
