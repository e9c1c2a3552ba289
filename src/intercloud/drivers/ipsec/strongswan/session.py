"""The VICI side of the strongSwan driver: a session on charon's socket, the listener thread
of log and up/down events, and what its log lines mean (`classify`)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

from intercloud.drivers.ipsec.strongswan.conns import text
from intercloud.errors import DriverError

Session = Any  # vici.Session or a fake with the same methods
ERROR_PATTERNS: tuple[tuple[str, str], ...] = (
    ("AUTHENTICATION_FAILED", "authentication failed: the peer rejected our authentication"),
    ("MAC mismatched", "authentication failed: pre-shared key differs from the peer's"),
    ("no shared key found", "authentication failed: no pre-shared key for these identities"),
    ("NO_PROPOSAL_CHOSEN", "no acceptable proposal (or the peer has no such connection)"),
    ("no acceptable proposal", "no acceptable proposal: crypto proposals differ from the peer's"),
    ("TS_UNACCEPTABLE", "traffic selectors unacceptable: check local_ts/remote_ts"),
    ("giving up after", "peer unreachable: no IKE answer"),
)


def classify(message: str) -> str | None:
    for needle, meaning in ERROR_PATTERNS:
        if needle in message:
            return f"{meaning} ({message})"
    return None


def unix_session(path: str, timeout: float = 10.0) -> Session:
    import vici

    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(timeout)
    try:
        sock.connect(path.removeprefix("unix://"))
    except OSError as exc:
        sock.close()
        raise DriverError(f"strongSwan VICI socket {path}: {exc.strerror or exc}") from exc
    return vici.Session(sock)


class Events(threading.Thread):
    """Own VICI session subscribed to log/updown events; reconnects until stopped."""

    EVENTS = ("log", "ike-updown", "child-updown")

    def __init__(self, factory: Callable[[], Session], handle: Callable[[str, dict], None]):
        super().__init__(name="vici-events", daemon=True)
        self._factory, self._handle = factory, handle
        self.tried, self._halt = threading.Event(), threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            session = gen = None
            try:
                session = self._factory()
                gen = session.listen(list(self.EVENTS), timeout=0.5)
                for label, msg in gen:
                    self.tried.set()  # registered: listen() yields only after that
                    if self._halt.is_set():
                        break
                    if label is not None:
                        self._handle(text(label), msg)
            except Exception:  # charon gone or restarting: retry
                self.tried.set()
            finally:
                with contextlib.suppress(Exception):
                    if gen is not None:
                        gen.close()
                with contextlib.suppress(Exception):
                    if session is not None:
                        session.transport.close()
            self._halt.wait(1.0)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
