"""An in-memory IPsec driver for tests: every ensured tunnel is up at once (ESTABLISHED with
one INSTALLED CHILD_SA), unless `fail_auth(name)` was called, then it is DOWN with
"authentication failed". Every ensure_connection/remove_connection is recorded in `calls`."""

from __future__ import annotations

from intercloud.drivers.ipsec.base import ChildStatus, ConnectionSpec, ConnectionStatus, Ipsec
from intercloud.drivers.ipsec.strongswan import effective_mode, nat_expected, validate

AUTH_FAILED = "authentication failed: pre-shared key differs from the peer's (fake)"


class FakeIpsec(Ipsec):
    def __init__(self, backend: str = "kernel-libipsec") -> None:
        self._backend = backend
        self.specs: dict[str, ConnectionSpec] = {}
        self.calls: list[tuple[str, str]] = []  # (verb, tunnel name) of ensure/remove
        self.failing: set[str] = set()
        self.closed = False
        self.guarded: set[str] = set()  # what ensure_guard was last given
        self._ids: dict[str, int] = {}
        self._next_id = 1

    def fail_auth(self, name: str, failing: bool = True) -> None:
        """Make `name` fail authentication (or succeed again with failing=False)."""
        (self.failing.add if failing else self.failing.discard)(name)

    def backend(self) -> str:
        return self._backend

    def ensure_connection(self, spec: ConnectionSpec, *, initiate: bool = True) -> bool:
        self.calls.append(("ensure_connection" if initiate else "load_connection", spec.name))
        validate(spec)
        changed = self.specs.get(spec.name) != spec
        if changed or spec.name not in self._ids:
            self._ids[spec.name] = self._next_id
            self._next_id += 1
        self.specs[spec.name] = spec
        return changed

    def ensure_guard(self, destinations: set[str]) -> bool:
        changed, self.guarded = self.guarded != destinations, set(destinations)
        return changed

    def remove_connection(self, name: str) -> bool:
        self.calls.append(("remove_connection", name))
        self._ids.pop(name, None)
        return self.specs.pop(name, None) is not None

    def connections(self) -> dict[str, ConnectionStatus]:
        out: dict[str, ConnectionStatus] = {}
        for name, spec in self.specs.items():
            if name in self.failing:
                out[name] = ConnectionStatus(name, "DOWN", last_error=AUTH_FAILED)
                continue
            mode = effective_mode(spec, self._backend).upper()
            nat = nat_expected(spec)
            encap = self._backend == "kernel-libipsec" or nat
            child = ChildStatus(name, "INSTALLED", mode, encap, unique_id=self._ids[name])
            out[name] = ConnectionStatus(name, "ESTABLISHED", nat_detected=nat, children=[child])
        return out

    def close(self) -> None:
        self.closed = True
