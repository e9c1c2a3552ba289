"""IPsec with strongSwan's charon, driven over VICI (one IKE SA per link, PSK authentication).

Decisions, settled by experiment with strongSwan 5.9.8 and kernel-libipsec (see
tests/integration/test_ipsec_strongswan.py):

* Backend: "kernel-libipsec" if VICI `stats` lists that plugin (5.9.8 has no `get-plugins`).
* Mode: libipsec cannot do transport mode, so the CHILD_SA is TUNNEL with libipsec, with a
  NAT (a `local_ts`/`remote_ts` override differing from the IKE address), or when asked;
  TRANSPORT (the ConnectionSpec default) only with the kernel backend. `tunnels()` reports the
  mode charon negotiated.
* Traffic selectors: all traffic between the two endpoint addresses (`local/32 === remote/32`,
  or the NAT overrides), not just UDP `protect_port`. libipsec routes everything to the
  peer's address into its TUN device (table 220) and drops what no SA covers, so a UDP-4789
  selector would swallow pings and the agents' federation HTTP (TCP 8700); protecting all of
  it is simple and encrypts federation HTTP too. IKE and ESP-in-UDP bypass the TUN route by
  fwmark (see charon.py: socket-default/kernel-netlink fwmark, kernel-libipsec allow_peer_ts).
* start_action = trap on both sides: the route into the TUN device exists from load time, so
  tunnel traffic is never sent in clear; without an SA libipsec drops it ("could not find an
  outbound IPsec SA"). libipsec sends no acquires, so traps never initiate: the `initiator`
  side initiates in `ensure_connection` whenever no IKE SA exists (non-blocking: VICI initiate
  with timeout -1; the agent's reconciler calls it periodically, which is the retry), and
  uses dpd_action=restart / close_action=start; the responder only answers.
* NAT: the NAT'd side initiates (its `local` is its private address); the public side's
  `remote` is the NAT address and its `remote_ts` the peer's private address, which is also
  the address its tunnel traffic (VXLAN remote) must use: the TS are the inner addresses.
  libipsec always encapsulates ESP in UDP and fakes NAT detection to force it, so charon's
  `nat-remote` is "yes" on every libipsec link. `nat_detected` therefore means: `nat-local`
  (our address is translated) or the peer's IKE address lies outside its traffic selector.
* Changes: the loaded config is compared with `list-conns` (addresses, ids, TS, mode,
  lifetimes) plus an in-memory digest of the whole load-conn dict (proposals are not listed);
  a differing conn is reloaded and, on the initiator, its SAs terminated so new ones use it
  (the responder does not: both terminating at once raced in CI and left stale SAs). The PSK
  (id = conn name, owners = both ids) is reloaded when missing or different, and a changed
  key terminates the SAs on either side; it is never logged. `unique = replace`: a new IKE SA
  with the same peer deletes older ones.
* Errors: a listener thread with its own VICI session subscribes to `log`, `ike-updown`
  and `child-updown`. Log lines (level <= 1, never secrets) of an IKE SA named after a
  connection are classified: "received AUTHENTICATION_FAILED notify error" (initiator) and
  "... but MAC mismatched" (responder) become "authentication failed: ..."; an `up` event
  clears the error.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import socket
import threading
from collections.abc import Callable
from typing import Any

from intercloud.drivers.ipsec.base import ChildStatus, ConnectionSpec, ConnectionStatus, Ipsec
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


def _ts(addr: str) -> str:
    return str(ipaddress.ip_network(addr, strict=False))


def _overridden(ts: str, ike: str) -> bool:
    """Whether a TS override names another address than the IKE one (i.e. a NAT)."""
    try:
        return bool(ts) and _ts(ts) != _ts(ike)
    except ValueError:
        return True


def nat_expected(spec: ConnectionSpec) -> bool:
    return _overridden(spec.local_ts, spec.local) or _overridden(spec.remote_ts, spec.remote)


def effective_mode(spec: ConnectionSpec, backend: str) -> str:
    tunnel = backend == "kernel-libipsec" or nat_expected(spec) or spec.mode == "tunnel"
    return "tunnel" if tunnel else "transport"


def child_lifetimes(rekey: int, initiator: bool = True) -> tuple[int, int, int]:
    """(rekey_time, life_time, rand_time) of a CHILD_SA.

    Both sides expire at rekey + margin, but their rekey windows do not overlap: the
    initiator rekeys in [rekey - margin/3, rekey], the responder only in
    [rekey + margin/3, rekey + 2 margin/3], that is when the initiator failed to. Two sides
    rekeying at once (an IKEv2 collision: two new CHILD_SAs, one deleted again) cost
    packets with libipsec in CI.
    """
    margin = max(rekey // 10, 6)
    rand = max(min(margin // 3, rekey // 5), 0)
    start = rekey if initiator else rekey + 2 * margin // 3
    return start, rekey + margin, rand


def validate(spec: ConnectionSpec) -> None:
    def bad(what: str) -> None:
        raise DriverError(f"ipsec {spec.name!r}: {what}")

    if not spec.name or not all(c.isalnum() or c in "-_." for c in spec.name):
        bad("invalid tunnel name (letters, digits, '-', '_', '.')")
    if spec.mode not in ("transport", "tunnel"):
        bad(f"mode must be transport or tunnel, not {spec.mode!r}")
    if spec.ike_version not in (1, 2):
        bad("ike_version must be 1 or 2")
    if not spec.psk:
        bad("empty pre-shared key")
    if not 0 <= spec.ike_port <= 65535:
        bad(f"ike_port {spec.ike_port} is not a UDP port")
    for label, addr in (("local", spec.local), ("remote", spec.remote)):
        if addr != "%any" and not _plain_address(addr):
            bad(f"{label} address {addr!r} is not a plain IP address or %any")
    for label, value in (("local", spec.local_ts or spec.local), ("remote", spec.remote_ts)):
        try:
            # remote: the IKE address unless remote_ts is set
            one_host = ipaddress.ip_network(value or spec.remote, strict=False).num_addresses == 1
        except ValueError:
            hint = "" if value else "; set remote_ts"
            bad(f"{label} {value or spec.remote!r} is not an address{hint}")
        # one host, never a range: a peer's 0.0.0.0/0 would divert all our traffic to it
        if "%" in (value or spec.remote) or not one_host:
            bad(f"{label} traffic selector {value or spec.remote!r} must be one host address")


def _plain_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return "%" not in value


def conn_dict(spec: ConnectionSpec, backend: str) -> dict[str, Any]:
    """The VICI `load-conn` message for a spec (pure; the PSK is not part of it)."""
    rekey, life, rand = child_lifetimes(spec.esp_lifetime, spec.initiator)
    child = {
        "local_ts": [_ts(spec.local_ts or spec.local)],
        "remote_ts": [_ts(spec.remote_ts or spec.remote)],
        "mode": effective_mode(spec, backend),
        "esp_proposals": list(spec.esp_proposals),
        "rekey_time": f"{rekey}s",
        "life_time": f"{life}s",
        "rand_time": f"{rand}s",
        # lane 0 traps: nothing to the peer leaves in clear. A further lane routes only while
        # its SA is up, so its share of the traffic falls back to lane 0 when it is down.
        "start_action": "trap" if spec.trap else "none",
        # libipsec sends no acquires: traps only drop, so the initiator re-creates SAs itself
        "dpd_action": "restart" if spec.initiator else "clear",
        "close_action": "start" if spec.initiator else "none",
    }
    conn: dict[str, Any] = {
        "version": str(spec.ike_version),
        "local_addrs": [spec.local],
        "remote_addrs": [spec.remote],
        "proposals": list(spec.ike_proposals),
        "rekey_time": f"{spec.ike_lifetime}s",
        "dpd_delay": f"{spec.dpd_delay}s",
        "mobike": "no",  # gateways have fixed addresses
        # A new IKE SA with the peer replaces any older one: after a reload or a lost DELETE an
        # initiator could keep a stale SA whose CHILD_SA libipsec would go on using.
        "unique": "replace",
        "encap": "yes" if backend == "kernel-libipsec" else "no",
        "local": {"auth": "psk", "id": spec.local_id},
        "remote": {"auth": "psk", "id": spec.remote_id},
        "children": {spec.name: child},
    }
    if spec.ike_port:
        conn.update(local_port=str(spec.ike_port), remote_port=str(spec.ike_port))
    return {spec.name: conn}


def conn_view(conn: dict[str, Any]) -> dict[str, Any]:
    """What `list-conns` reports of a load-conn message or of a listed conn, comparably."""

    def texts(d: dict, *keys: str) -> list[str]:  # the first key present: load vs list names
        return [_text(v) for v in next((d[k] for k in keys if k in d), [])]

    def secs(d: dict, key: str) -> str:
        return _text(d.get(key, "")).removesuffix("s")

    children = {
        _text(name): [_text(c.get("mode")).upper(), secs(c, "rekey_time"),
                      texts(c, "local_ts", "local-ts"), texts(c, "remote_ts", "remote-ts")]
        for name, c in conn.get("children", {}).items()
    }  # fmt: skip
    local = conn.get("local") or conn.get("local-1") or {}
    remote = conn.get("remote") or conn.get("remote-1") or {}
    return {
        "version": _text(conn.get("version")).removeprefix("IKEv"),
        "addrs": [texts(conn, "local_addrs"), texts(conn, "remote_addrs")],
        "times": [secs(conn, "rekey_time"), secs(conn, "dpd_delay")],
        "ids": [_text(local.get("id")), _text(remote.get("id"))],
        "children": children,
    }


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _text(v: Any) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v or "")


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


class _Events(threading.Thread):
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
                        self._handle(_text(label), msg)
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


class StrongswanIpsec(Ipsec):
    def __init__(
        self,
        socket_path: str,
        *,
        session_factory: Callable[[], Session] | None = None,
        events: bool = True,
    ) -> None:
        self.socket_path = socket_path
        self._factory = session_factory or (lambda: unix_session(socket_path))
        self._lock = threading.RLock()
        self._session: Session | None = None
        self._backend: str | None = None
        self._digests: dict[str, str] = {}  # name -> digest of the loaded load-conn dict
        self._psks: dict[str, str] = {}  # name -> sha256 of the loaded PSK
        self._errors: dict[str, str] = {}  # name -> last error, written by the event thread
        self._errors_lock = threading.Lock()
        self._events: _Events | None = None
        if events:
            self._events = _Events(self._factory, self._on_event)
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
            out.update({_text(k): v for k, v in item.items()})
        return out

    def _sas(self) -> list[tuple[str, dict]]:
        items = self._call("list-sas", lambda s: list(s.list_sas()))
        return [(_text(k), v) for item in items for k, v in item.items()]

    def _shared_ids(self) -> set[str]:
        res = self._call("get-shared", lambda s: s.get_shared())
        return {_text(k) for k in res.get("keys", [])}

    def _on_event(self, label: str, msg: dict) -> None:
        if label == "log":
            name = _text(msg.get("ikesa-name", ""))
            error = classify(_text(msg.get("msg", "")))
            if name and name != "(unnamed)" and error:
                with self._errors_lock:
                    self._errors[name] = error
            return
        if _text(msg.get("up", "")) == "yes":  # ike-updown / child-updown
            with self._errors_lock:
                for name in msg:
                    self._errors.pop(_text(name), None)

    # --- the contract ----------------------------------------------------------------------

    def backend(self) -> str:
        if self._backend is None:
            plugins = self._call("stats", lambda s: s.stats()).get("plugins", [])
            names = {_text(p) for p in plugins}
            self._backend = "kernel-libipsec" if "kernel-libipsec" in names else "kernel"
        return self._backend

    def ensure_connection(self, spec: ConnectionSpec) -> bool:
        validate(spec)
        name = spec.name
        message = conn_dict(spec, self.backend())
        digest = _digest(message)
        with self._lock:
            loaded = self._conns().get(name)
            known = self._digests.get(name)
            conn_changed = (
                loaded is None
                or conn_view(loaded) != conn_view(message[name])
                or (known is not None and known != digest)
            )
            if conn_changed or known is None:  # unknown digest: reload, harmless
                self._call(f"load-conn {name}", lambda s: s.load_conn(message))
                self._digests[name] = digest
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
            initiated = spec.initiator and self._needs_initiate(name)
            if initiated:
                request = {"child": name, "ike": name, "timeout": "-1", "init-limits": "no"}
                self._call(f"initiate {name}", lambda s: list(s.initiate(request)))
            return bool(conn_changed or psk_changed or initiated)

    def _needs_initiate(self, name: str) -> bool:
        for sa_name, sa in self._sas():
            state = _text(sa.get("state"))
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
                state = _text(sa.get("state"))
                if rank.get(state, 0) >= rank.get(st.ike_state, 0) or st.ike_state == "DOWN":
                    st.ike_state = state
                remote_host = _text(sa.get("remote-host"))
                for child in (sa.get("child-sas") or {}).values():
                    st.children.append(_child(child))
                    if not _inside(remote_host, child.get("remote-ts", [])):
                        st.nat_detected = True
                if _text(sa.get("nat-local")) == "yes":
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


def _child(c: dict) -> ChildStatus:
    def num(key: str) -> int:
        text = _text(c.get(key, "0"))
        return int(text) if text.isdigit() else 0

    return ChildStatus(
        _text(c.get("name")), _text(c.get("state")), _text(c.get("mode")),
        _text(c.get("encap")) == "yes", num("bytes-in"), num("bytes-out"), num("packets-in"),
        num("packets-out"), num("uniqueid"), _text(c.get("spi-in")), _text(c.get("spi-out")),
    )  # fmt: skip


def _inside(host: str, selectors: list) -> bool:
    """Whether the IKE address lies in one of the traffic selectors (no NAT between)."""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return True
    for ts in selectors:
        with contextlib.suppress(ValueError):
            if addr in ipaddress.ip_network(_text(ts).split("[")[0], strict=False):
                return True
    return False
