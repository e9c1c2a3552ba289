"""The agent's HTTP server: uvicorn serving the API app, told how to stop a gateway first."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

from intercloud import tls
from intercloud.api.app import create_app
from intercloud.api.context import AppContext
from intercloud.api.http_protocol import OneWriteHttpProtocol

SHUTDOWN_GRACE = 2  # seconds open connections may take to end once the agent is told to stop


class Server(uvicorn.Server):
    """uvicorn's server, calling `first` when told to stop (SIGTERM, SIGINT): a gateway (HA)
    steps down and hands its lease over at once, not after the server's shutdown (up to
    SHUTDOWN_GRACE), and not never: uvicorn raises the signal again once stopped, which ends
    the process before the agent's cleanup."""

    def __init__(self, first: Callable[[], None], config: uvicorn.Config) -> None:
        super().__init__(config)
        self._first = first

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit:
            # a thread of its own: this handler runs on the event loop's thread, where
            # pyroute2's netlink sockets cannot open (the loop is uvloop's)
            first = threading.Thread(target=self._first, name="before-exit")
            first.start()
            first.join(timeout=10)
        super().handle_exit(sig, frame)


def make(ctx: AppContext, server_tls: tls.ServerTLS | None, first: Callable[[], None]) -> Server:
    """The server of `ctx`'s API app on the configured address, over `server_tls` if given."""
    cfg = ctx.cfg
    ssl_options: dict[str, Any] = {}
    if server_tls is not None:  # uvicorn serves this very context: SIGHUP reloads it in place
        ssl_options["ssl_context_factory"] = lambda *_: server_tls.context
    return Server(
        first,
        uvicorn.Config(
            create_app(ctx),
            host=cfg.agent.listen,
            port=cfg.agent.port,
            log_config=None,
            access_log=False,
            log_level=cfg.agent.log_level,
            # an answer's head and body in one write: 1.3-1.4x the reads per second (bench)
            http=OneWriteHttpProtocol,
            # Peers keep a pooled connection to us (federation/transport.py): on SIGTERM an
            # idle one would hold the shutdown (TLS close waits for the peer's close_notify),
            # measured > 10 s; stop waiting for open connections after this.
            timeout_graceful_shutdown=SHUTDOWN_GRACE,
            **ssl_options,
        ),
    )
