"""What a peer answers to each federation call, typed and checked at the boundary.

A peer's answer is data from outside, however well signed: every parser here takes the decoded
JSON (`Channel.request`, transport.py) and returns typed values, or raises `BadAnswer` (a PeerError)
"peer B: bad answer to <call>: <field>: <why>", never KeyError/TypeError/ValueError. The
message never repeats the peer's text, so it can go into a status or a log line as it is; the
text a peer may legitimately send (a replica's reason) is cleaned (domain/text.py).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from intercloud.domain import text
from intercloud.domain import validation as v
from intercloud.errors import Invalid, PeerError

REPLICA_STATES = frozenset({"pending", "active", "error"})
PEER_REASON_MAX = 512  # so "peer B: <reason>" fits the 1,024-character reason columns
MAX_NAMES = 256  # members of a network (service/replicas.py)
MAX_PAIRS = 4096  # relay pairs, both directions (service/mesh.set_relays takes 1,024)

Pair = tuple[str, str]


class BadAnswer(PeerError):
    """A peer answered something this agent cannot use (its own objects say so)."""


def _bad(peer: str, call: str, where: str, why: str) -> BadAnswer:
    return BadAnswer(f"peer {peer}: bad answer to {call}: {where}: {why}")


def _object(peer: str, call: str, answer: object) -> dict:
    if not isinstance(answer, dict):
        raise _bad(peer, call, "answer", f"must be a JSON object, not {_kind(answer)}")
    return answer


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


# -- health -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    name: str
    tunnel_endpoint: str | None  # the peer's own address for our tunnel (behind NAT)
    time: float | None = None  # the peer's clock when it answered (None: an older agent)


TIME_MAX_CHARS = 40  # "2026-12-04T19:54:15.005245+00:00" is 32


def peer_time(peer: str, call: str, value: object) -> float | None:
    """The `time` of a health answer: an ISO 8601 string with its UTC offset, as epoch seconds
    (absent or null: None, an older agent)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.isascii() or len(value) > TIME_MAX_CHARS:
        why = f"must be an ISO 8601 time (a string of at most {TIME_MAX_CHARS} characters)"
        raise _bad(peer, call, "time", why)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise _bad(peer, call, "time", "must be an ISO 8601 time") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise _bad(peer, call, "time", "must say its UTC offset")
    seconds = when.timestamp()
    if not math.isfinite(seconds) or not 0 < seconds < 2**33:
        raise _bad(peer, call, "time", "is not a plausible time")
    return seconds


def health(peer: str, answer: object, family: int | None = None) -> Health:
    """`family` (4 or 6): that of our end of the link; the peer's end must match it."""
    call = "health"
    body = _object(peer, call, answer)
    name = body.get("name")
    if name != peer:
        raise _bad(peer, call, "name", "is not the name this peer has here")
    clock = peer_time(peer, call, body.get("time"))
    endpoint = body.get("tunnel_endpoint")
    if endpoint is None:
        return Health(peer, None, clock)
    if not isinstance(endpoint, str):
        why = f"must be an IP address (a string) or null, not {_kind(endpoint)}"
        raise _bad(peer, call, "tunnel_endpoint", why)
    try:
        endpoint = v.ip_address(endpoint, "tunnel_endpoint")
    except Invalid:
        why = "must be a plain unicast IP address (no prefix, no zone id) or null"
        raise _bad(peer, call, "tunnel_endpoint", why) from None
    addr = ipaddress.ip_address(endpoint)
    if addr.is_loopback or addr.is_link_local:  # nobody else's tunnel ends there
        raise _bad(peer, call, "tunnel_endpoint", "must not be a loopback or link-local address")
    if family is not None and addr.version != family:
        raise _bad(peer, call, "tunnel_endpoint", f"must be an IPv{family} address like ours")
    return Health(peer, endpoint, clock)


# -- replicas and VNIs ------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaView:
    """The peer's replica of one of our expansions, as far as we use it."""

    status: str
    vni: int | None
    reason: str = ""


def replica(peer: str, answer: object, call: str = "replica") -> ReplicaView:
    body = _object(peer, call, answer)
    status = body.get("status")
    if status not in REPLICA_STATES:
        raise _bad(peer, call, "status", f"must be one of {', '.join(sorted(REPLICA_STATES))}")
    vni = body.get("vni")
    if vni is not None:
        vni = _vni(peer, call, "vni", vni, v.VNI_MIN, v.VNI_MAX)
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise _bad(peer, call, "reason", "must be a string")
    return ReplicaView(status, vni, text.clean(reason, PEER_REASON_MAX))


def confirmations(
    peer: str, answer: object, sent: Collection[str]
) -> dict[str, ReplicaView | None]:
    """The answer to a confirmation call: each uid we sent -> the peer's replica view, or
    None where it refused that replica (its reason is the PUT's to tell, one by one)."""
    call = "confirmations"
    items = _object(peer, call, answer).get("replicas")
    if not isinstance(items, list) or len(items) > len(sent):
        raise _bad(peer, call, "replicas", f"must be a list of at most {len(sent)} objects")
    out: dict[str, ReplicaView | None] = {}
    for item in items:
        uid = _object(peer, call, item).get("uid")
        if not isinstance(uid, str) or uid not in sent:
            raise _bad(peer, call, "uid", "must be one of the replicas asked about")
        out[uid] = None if "error" in item else replica(peer, item, call)
    return out


def _vni(peer: str, call: str, where: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(peer, call, where, f"must be an integer, not {_kind(value)}")
    if not low <= value <= high:
        raise _bad(peer, call, where, f"must be from {low} to {high} (this agent's VNI range)")
    return value


def vni(
    peer: str,
    answer: object,
    low: int,
    high: int,
    *,
    requested: int | None = None,
    exclude: Collection[int] = (),
    call: str = "vni",
) -> int:
    """The VNI a peer agreed: in our range, the one we asked for if we did, none we said is
    in use here."""
    value = _vni(peer, call, "vni", _object(peer, call, answer).get("vni"), low, high)
    if requested is not None and value != requested:
        raise _bad(peer, call, "vni", "is not the VNI requested")
    if value in exclude:
        raise _bad(peer, call, "vni", "is one this agent said is in use")
    return value


def adjacency(peer: str, answer: object, low: int, high: int, exclude: Collection[int]) -> int:
    return vni(peer, answer, low, high, exclude=exclude, call="adjacency")


# -- mesh: relays, direct tunnels, flushes ----------------------------------------------------


def _names(peer: str, call: str, where: str, value: object, members: Collection[str]) -> list:
    if not isinstance(value, list) or len(value) > MAX_NAMES:
        raise _bad(peer, call, where, f"must be a list of at most {MAX_NAMES} member names")
    for name in value:
        if not isinstance(name, str) or name not in members:
            raise _bad(peer, call, where, "names a cloud that is not a member of the network")
    return sorted(set(value))


def _pairs(peer: str, call: str, where: str, value: object, members: Collection[str]) -> set:
    if not isinstance(value, list) or len(value) > MAX_PAIRS:
        raise _bad(peer, call, where, f"must be a list of at most {MAX_PAIRS} [from, to] pairs")
    out: set[Pair] = set()
    for pair in value:
        if not isinstance(pair, list) or len(pair) != 2 or pair[0] == pair[1]:
            raise _bad(peer, call, where, "each must be [from, to], two different members")
        _names(peer, call, where, pair, members)  # both members of the network
        out.add((pair[0], pair[1]))
    return out


@dataclass(frozen=True)
class Relays:
    wanted: set[Pair]  # what the member now relays for us
    applied: set[Pair] | None  # what its data plane still does (None: cannot tell yet)


def relays(peer: str, answer: object, members: Iterable[str]) -> Relays:
    call = "relays"
    body = _object(peer, call, answer)
    names = frozenset(members)
    wanted = _pairs(peer, call, "relays", body.get("relays"), names)
    applied = body.get("applied")
    if applied is not None:
        applied = _pairs(peer, call, "applied", applied, names)
    return Relays(wanted, applied)


def direct(peer: str, answer: object, members: Iterable[str]) -> list[str]:
    call = "direct"
    return _names(peer, call, "direct", _object(peer, call, answer).get("direct"), set(members))


def ports(peer: str, answer: object, cidr: str) -> list[list[str]]:
    call = "ports"
    try:
        return v.port_list(_object(peer, call, answer).get("ports"), cidr)
    except Invalid:
        why = f"must be a list of at most {v.MAX_PORTS} [mac, ip] in {cidr}"
        raise _bad(peer, call, "ports", why) from None


def accepted(peer: str, answer: object, call: str) -> None:
    """An answer we only need to be an acknowledgement (flush: `{}`; delete: no body)."""
    if answer is not None:
        _object(peer, call, answer)


# -- refusals -----------------------------------------------------------------------------------


def reason(exc: PeerError) -> str:
    """What a peer's failure becomes in a status a user reads: the message, cleaned, without
    the administrator's detail (the peer's URL, the transport's own words)."""
    return text.clean(exc.message)


def failed(errors: list[str] | None, exc: PeerError) -> str:
    """`reason(exc)`, also added to a pass's collected errors when there are some."""
    said = reason(exc)
    if errors is not None:
        errors.append(said)
    return said


def admin_reason(exc: PeerError) -> str:
    """The same for the administrator (a link's status): with the detail."""
    detail = getattr(exc, "detail", "")
    return text.clean(f"{exc.message} ({detail})" if detail else exc.message)
