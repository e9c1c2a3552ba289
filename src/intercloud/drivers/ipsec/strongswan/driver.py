"""StrongswanIpsec: one charon over VICI (the decisions are in the package's docstring)."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import threading
from collections.abc import Callable
from typing import Any

from intercloud.drivers.ipsec.base import ChildStatus, ConnectionSpec, ConnectionStatus, Ipsec
from intercloud.drivers.ipsec.cleartext_guard import CleartextGuard
from intercloud.drivers.ipsec.strongswan.conns import conn_dict, conn_view, digest, text, validate
from intercloud.drivers.ipsec.strongswan.session import Events, Session, classify, unix_session
from intercloud.errors import DriverError


class StrongswanIpsec(Ipsec):
    def __init__(
        self,
        socket_path: str,
        *,
        session_factory: Callable[[], Session] | None = None,
        events: bool = True,
        guard: CleartextGuard | None = None,
    ) -> None:
        self.socket_path = socket_path
        self._guard = guard
        self._factory = session_factory or (lambda: unix_session(socket_path))
        self._lock = threading.RLock()
        self._session: Session | None = None
        self._backend: str | None = None
        self._digests: dict[str, str] = {}  # name -> digest of the loaded load-conn dict
        self._psks: dict[str, str] = {}  # name -> sha256 of the loaded PSK
        self._errors: dict[str, str] = {}  # name -> last error, written by the event thread
        self._errors_lock = threading.Lock()
        self._events: Events | None = None
        self._sa_up: Callable[[], None] | None = None
        if events:
            self._events = Events(self._factory, self._on_event)
            self._events.start()
            self._events.tried.wait(5)  # subscribed (or charon not there yet)

    # --- VICI plumbing -------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[Session], Any]) -> Any:
        from vici.exception import CommandException

        with self._lock:
            for attempt in (0, 1):
                try:
                    if self._session is None:
                        self._session = self._factory()
                    return fn(self._session)
                except CommandException as exc:
                    msg = str(exc).removeprefix("Command failed: ")
                    raise DriverError(f"strongSwan {what}: {msg}") from exc
                except DriverError:
                    raise
                except Exception as exc:  # broken session: reconnect once
                    self._drop_session()
                    if attempt:
                        raise DriverError(f"strongSwan {what}: VICI failed: {exc}") from exc
        raise AssertionError("unreachable")

    def _drop_session(self) -> None:
        session, self._session = self._session, None
        with contextlib.suppress(Exception):
            if session is not None:
                session.transport.close()

    def _conns(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for item in self._call("list-conns", lambda s: list(s.list_conns())):
            out.update({text(k): v for k, v in item.items()})
        return out

    def _sas(self) -> list[tuple[str, dict]]:
        items = self._call("list-sas", lambda s: list(s.list_sas()))
        return [(text(k), v) for item in items for k, v in item.items()]

    def _shared_ids(self) -> set[str]:
        res = self._call("get-shared", lambda s: s.get_shared())
        return {text(k) for k in res.get("keys", [])}

    def _on_event(self, label: str, msg: dict) -> None:
        if label == "log":
            name = text(msg.get("ikesa-name", ""))
            error = classify(text(msg.get("msg", "")))
            if name and name != "(unnamed)" and error:
                with self._errors_lock:
                    self._errors[name] = error
            return
        if text(msg.get("up", "")) == "yes":  # ike-updown / child-updown
            with self._errors_lock:
                for name in msg:
                    self._errors.pop(text(name), None)
            if label == "child-updown" and self._sa_up is not None:
                self._sa_up()

    def on_sa_up(self, callback: Callable[[], None]) -> None:
        self._sa_up = callback

    # --- the contract ----------------------------------------------------------------------

    def backend(self) -> str:
        if self._backend is None:
            plugins = self._call("stats", lambda s: s.stats()).get("plugins", [])
            names = {text(p) for p in plugins}
            self._backend = "kernel-libipsec" if "kernel-libipsec" in names else "kernel"
        return self._backend

    def ensure_connection(self, spec: ConnectionSpec, *, initiate: bool = True) -> bool:
        validate(spec)
        name = spec.name
        message = conn_dict(spec, self.backend())
        wanted = digest(message)
        with self._lock:
            loaded = self._conns().get(name)
            known = self._digests.get(name)
            conn_changed = (
                loaded is None
                or conn_view(loaded) != conn_view(message[name])
                or (known is not None and known != wanted)
            )
            if conn_changed or known is None:  # unknown digest: reload, harmless
                self._call(f"load-conn {name}", lambda s: s.load_conn(message))
                self._digests[name] = wanted
            if conn_changed and loaded is not None and spec.initiator:
                # SAs still run on the old config: the initiator replaces them. The responder
                # does not terminate too: both at once race, and can leave one side with an SA
                # the other deleted; it takes the new config from the next SA the peer makes.
                self._terminate(name)
            psk = hashlib.sha256(spec.psk.encode()).hexdigest()
            known_psk = self._psks.get(name)
            psk_changed = name not in self._shared_ids() or known_psk not in (None, psk)
            if psk_changed or known_psk is None:
                owners = [spec.local_id, spec.remote_id]
                secret = {"id": name, "type": "IKE", "data": spec.psk, "owners": owners}
                self._call(f"load-shared {name}", lambda s: s.load_shared(secret))
                if known_psk is not None and known_psk != psk and not conn_changed:
                    self._terminate(name)  # a new key takes effect now, not at the next rekey
                self._psks[name] = psk
            initiated = initiate and spec.initiator and self._needs_initiate(name)
            if initiated:
                request = {"child": name, "ike": name, "timeout": "-1", "init-limits": "no"}
                self._call(f"initiate {name}", lambda s: list(s.initiate(request)))
            return bool(conn_changed or psk_changed or initiated)

    def ensure_guard(self, destinations: set[str]) -> bool:
        if self._guard is None:
            return False
        # Kernel ESP keeps its policies in the kernel when charon dies: nothing falls through.
        libipsec = self.backend() == "kernel-libipsec"
        return self._guard.ensure(destinations if libipsec else ())

    def _needs_initiate(self, name: str) -> bool:
        for sa_name, sa in self._sas():
            state = text(sa.get("state"))
            if sa_name != name or state in ("DELETING", "DESTROYING"):
                continue
            if state != "ESTABLISHED" or sa.get("child-sas"):
                return False  # connecting, or up with its CHILD_SA(s)
        return True

    def _terminate(self, name: str) -> None:
        if not any(n == name for n, _ in self._sas()):
            return
        request = {"ike": name, "force": "yes", "timeout": "2000"}
        with contextlib.suppress(DriverError):  # "no matching SAs": already gone
            self._call(f"terminate {name}", lambda s: list(s.terminate(request)))

    def initiate_all(self) -> list[str]:
        with self._lock:
            names = [name for name in self._conns() if self._needs_initiate(name)]
            for name in names:
                self._call(f"initiate {name}", _initiating(name))
        return names

    def terminate_all(self) -> None:
        with self._lock:
            for name in {n for n, _ in self._sas()}:
                with contextlib.suppress(DriverError):  # gone meanwhile
                    self._call(f"terminate {name}", _terminating(name))

    def remove_connection(self, name: str) -> bool:
        with self._lock:
            conns, keys = self._conns(), self._shared_ids()
            existed = name in conns or name in keys or any(n == name for n, _ in self._sas())
            if name in conns:  # first: removes the trap policies, so nothing re-initiates
                self._call(f"unload-conn {name}", lambda s: s.unload_conn({"name": name}))
            self._terminate(name)
            if name in keys:
                self._call(f"unload-shared {name}", lambda s: s.unload_shared({"id": name}))
            self._digests.pop(name, None)
            self._psks.pop(name, None)
        with self._errors_lock:
            self._errors.pop(name, None)
        return existed

    def connections(self) -> dict[str, ConnectionStatus]:
        with self._lock:
            out = {name: ConnectionStatus(name, "DOWN") for name in self._conns()}
            rank = {"ESTABLISHED": 3, "REKEYING": 2, "CONNECTING": 1}
            for name, sa in self._sas():
                st = out.setdefault(name, ConnectionStatus(name, "DOWN"))
                state = text(sa.get("state"))
                if rank.get(state, 0) >= rank.get(st.ike_state, 0) or st.ike_state == "DOWN":
                    st.ike_state = state
                remote_host = text(sa.get("remote-host"))
                for child in (sa.get("child-sas") or {}).values():
                    st.children.append(_child(child))
                    if not _inside(remote_host, child.get("remote-ts", [])):
                        st.nat_detected = True
                if text(sa.get("nat-local")) == "yes":
                    st.nat_detected = True
        with self._errors_lock:
            for name, st in out.items():
                st.last_error = "" if st.up else self._errors.get(name, "")
        return out

    def close(self) -> None:
        if self._events is not None:
            self._events.stop()
            self._events = None
        with self._lock:
            self._drop_session()


def _initiating(name: str) -> Callable[[Session], list]:
    """A VICI initiate of `name` that does not wait for the exchange."""
    request = {"child": name, "ike": name, "timeout": "-1", "init-limits": "no"}
    return lambda s: list(s.initiate(request))


def _terminating(name: str) -> Callable[[Session], list]:
    """A VICI terminate of every SA of `name`, at once (no DELETE exchange waited for)."""
    request = {"ike": name, "force": "yes", "timeout": "-1"}
    return lambda s: list(s.terminate(request))


def _child(c: dict) -> ChildStatus:
    def num(key: str) -> int:
        raw = text(c.get(key, "0"))
        return int(raw) if raw.isdigit() else 0

    return ChildStatus(
        text(c.get("name")), text(c.get("state")), text(c.get("mode")),
        text(c.get("encap")) == "yes", num("bytes-in"), num("bytes-out"), num("packets-in"),
        num("packets-out"), num("uniqueid"), text(c.get("spi-in")), text(c.get("spi-out")),
    )  # fmt: skip


def _inside(host: str, selectors: list) -> bool:
    """Whether the IKE address lies in one of the traffic selectors (no NAT between)."""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return True
    for ts in selectors:
        with contextlib.suppress(ValueError):
            if addr in ipaddress.ip_network(text(ts).split("[")[0], strict=False):
                return True
    return False
