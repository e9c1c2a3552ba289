"""What a ConnectionSpec becomes in VICI: the checked `load-conn` dict (modes, traffic
selectors, lifetimes) and the view of a loaded conn that `list-conns` gives back, to compare."""

from __future__ import annotations

import hashlib
import ipaddress
import json
from typing import Any

from intercloud.drivers.ipsec.base import ConnectionSpec
from intercloud.errors import DriverError


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
        return [text(v) for v in next((d[k] for k in keys if k in d), [])]

    def secs(d: dict, key: str) -> str:
        return text(d.get(key, "")).removesuffix("s")

    children = {
        text(name): [text(c.get("mode")).upper(), secs(c, "rekey_time"),
                      texts(c, "local_ts", "local-ts"), texts(c, "remote_ts", "remote-ts")]
        for name, c in conn.get("children", {}).items()
    }  # fmt: skip
    local = conn.get("local") or conn.get("local-1") or {}
    remote = conn.get("remote") or conn.get("remote-1") or {}
    return {
        "version": text(conn.get("version")).removeprefix("IKEv"),
        "addrs": [texts(conn, "local_addrs"), texts(conn, "remote_addrs")],
        "times": [secs(conn, "rekey_time"), secs(conn, "dpd_delay")],
        "ids": [text(local.get("id")), text(remote.get("id"))],
        "children": children,
    }


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def text(v: Any) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v or "")
