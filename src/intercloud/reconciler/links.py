"""Links phase of a reconciler pass: health-check every enabled link's peer, write each link's
state (up = the peer answers and, if encrypted, its IPsec connection is up), and say which
links are down (and, while one just went down, that the loop should pass again soon)."""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from intercloud.domain import text
from intercloud.errors import PeerError
from intercloud.federation import answers
from intercloud.federation.peers import PeerRef
from intercloud.reconciler import at_once, connections
from intercloud.reconciler.connections import Readiness
from intercloud.reconciler.memory import Memory
from intercloud.reconciler.parts import Parts, PassResult
from intercloud.store import models as m

log = logging.getLogger("intercloud.reconciler")

DISABLED = "disabled by the administrator"
HEALTH_FRESH = 2.0  # a health answer younger than this is not asked again
FAST_RETRY_WINDOW = 10.0  # a link down for less than this is checked again soon


@dataclass(frozen=True)
class Health:
    answers: bool
    said: str = ""  # why not, for users
    reason: str = ""  # why not, for the administrator


ANSWERS = Health(True)


@dataclass(frozen=True)
class LinkStates:
    down: dict[str, str]  # peer -> why its link is not up (users may read it), disabled too
    broken: set[str]  # peers whose link is down but not disabled
    changed: set[str]  # broken this pass and not the last one, or the other way round


def phase(
    parts: Parts,
    memory: Memory,
    result: PassResult,
    ready: dict[str, Readiness] | None,
    *,
    recorded: bool = False,
) -> LinkStates:
    """`recorded`: take each link's health as the last check recorded it instead of asking
    its peer (a gateway that just took over: the tunnels come first, a round trip to every
    peer after); the pass is then not settled, so the next one, soon, asks."""
    # A peer behind an encrypted link that is not up cannot answer (its traffic is dropped
    # until the SA is up): do not wait for the health check's timeout to learn that.
    unready = {p for p, r in (ready or {}).items() if not r.ready}
    if recorded:
        health = recorded_health(parts)
        result.settled = False
    else:
        health = check(parts, memory, result, skip=unready)
    down = write_states(parts, health, ready or {})
    broken = {peer for peer, why in down.items() if why != DISABLED}
    changed = broken ^ set(memory.down_since)  # its keys: the last pass's broken links
    result.links_down = bool(broken)
    recently_down(memory, broken, parts.clock())  # the rest's link retries (coming_up)
    return LinkStates(down, broken, changed)


def recently_down(memory: Memory, broken: set[str], now: float) -> bool:
    """Whether a link went down (or was made) less than FAST_RETRY_WINDOW ago: a new or
    just-repaired link usually comes up within a second or two, so pass again soon."""
    for peer in list(memory.down_since):
        if peer not in broken:
            del memory.down_since[peer]
            memory.back_at[peer] = now
    for peer in broken:
        memory.down_since.setdefault(peer, now)
    return coming_up(memory, now)


def coming_up(memory: Memory, now: float) -> bool:
    """Whether a link the last pass found broken went down (or was made) less than
    FAST_RETRY_WINDOW ago."""
    return any(now - since < FAST_RETRY_WINDOW for since in memory.down_since.values())


def back(parts: Parts, memory: Memory) -> bool:
    """Between passes: whether a link the last pass found broken would be up now (its IPsec
    connection ready if it is encrypted, its peer answering). Asks those links' peers only
    and writes no link state: the pass that follows does, and sees the change."""
    broken = set(memory.down_since)
    if not broken:
        return False
    ready = connections.phase(parts, memory, PassResult())  # the links' share: no expansion
    if ready is None:
        return False
    unready = {peer for peer, r in ready.items() if not r.ready}
    if not broken - unready:
        return False
    health = check(parts, memory, PassResult(), skip=unready, only=broken)
    return any(h.answers for h in health.values())


def check(
    parts: Parts,
    memory: Memory,
    result: PassResult,
    skip: set[str],
    only: set[str] | None = None,
) -> dict[int, Health]:
    """Health-check every enabled link's peer (or those in `only`) but those in `skip`, by
    link id. The peer also tells its own address for our tunnel (it differs from ours for it
    behind NAT). The peers are asked at the same time: a pass waits for the slowest one (one
    HEALTH_TIMEOUT for any number of unreachable peers), not for each in turn."""
    with parts.store.session() as s:
        todo = [
            (lk.id, PeerRef(lk.peer.name, lk.peer.federation_url, lk.peer.key), family)
            for lk in s.scalars(select(m.Link).where(m.Link.enabled.is_(True)))
            for family in [_family(lk.local_endpoint)]
        ]
    health: dict[int, Health] = {}
    now = parts.clock()
    asks: list[_Ask] = []
    for link_id, peer, family in todo:
        if peer.name in skip or (only is not None and peer.name not in only):
            continue
        fresh = memory.healthy_at.get((link_id, peer.url), -HEALTH_FRESH)
        if now - fresh < HEALTH_FRESH:
            # Answered a moment ago: a pass triggered by an API change need not ask again.
            health[link_id] = ANSWERS
            continue
        asks.append(_Ask(link_id, peer, family))
    for ask, (answer, rtt) in zip(asks, _asked(parts, asks), strict=True):
        if isinstance(answer, PeerError):
            parts.metrics.checked(ask.peer.name, None)
            health[ask.link_id] = Health(
                False, answers.reason(answer), answers.admin_reason(answer)
            )
            memory.healthy_at.pop((ask.link_id, ask.peer.url), None)
            if isinstance(answer, answers.BadAnswer):
                result.peer_errors.append(answer.message)
            continue
        parts.metrics.checked(ask.peer.name, rtt)
        health[ask.link_id] = ANSWERS
        memory.healthy_at[(ask.link_id, ask.peer.url)] = now
        if answer.tunnel_endpoint:
            _learn_endpoint(parts, ask.link_id, ask.peer.name, answer.tunnel_endpoint)
    return health


@dataclass(frozen=True)
class _Ask:
    link_id: int
    peer: PeerRef
    family: int | None


Asked = tuple[answers.Health | PeerError, float]


def _asked(parts: Parts, asks: list[_Ask]) -> list[Asked]:
    """Each peer's health answer (or why there is none) and its round trip, in `asks`' order.
    The calls run in threads that touch nothing but the call; the caller applies them."""

    def one(ask: _Ask) -> Asked:
        started = time.perf_counter()  # the round trip (RTT), whatever clock the pass has
        try:
            answer: answers.Health | PeerError = parts.federation.peer(ask.peer).health(ask.family)
        except PeerError as exc:
            answer = exc
        return answer, time.perf_counter() - started

    return at_once.each(one, asks)


def recorded_health(parts: Parts) -> dict[int, Health]:
    """Each enabled link's health as its last check recorded it (the state the active
    gateway before us wrote), by link id."""
    with parts.store.session() as s:
        return {
            lk.id: ANSWERS if lk.state == "up" else Health(False, lk.reason or "not checked yet")
            for lk in s.scalars(select(m.Link).where(m.Link.enabled.is_(True)))
        }


def _learn_endpoint(parts: Parts, link_id: int, peer: str, endpoint: str) -> None:
    with parts.store.session() as s:
        lk = s.get(m.Link, link_id)
        if lk is not None and lk.peer_tunnel_endpoint != endpoint:
            log.info("link %s: peer's tunnel endpoint is %s", peer, endpoint)
            lk.peer_tunnel_endpoint = endpoint


def write_states(
    parts: Parts, health: dict[int, Health], ready: dict[str, Readiness]
) -> dict[str, str]:
    """Write each link's state. Returns the peers whose link is not up, with the reason users
    may read (the link's own reason, for the administrator, may say more)."""
    down: dict[str, str] = {}
    now = datetime.now(UTC)
    # links' rows only: the views that do not show the links stay kept (api/reads.py)
    with parts.store.session(shown=m.Link.__tablename__) as s:
        for lk in s.scalars(select(m.Link)):
            if not lk.enabled:
                state, reason = "disabled", DISABLED
                down[lk.peer.name] = reason
            else:
                got = health.get(lk.id, Health(False, "not checked yet"))
                ok, said, reason = got.answers, got.said, got.reason or got.said
                outcome = ready.get(lk.peer.name)
                if outcome is not None and not outcome.ready:
                    # The connection is the cause: the peer's agent is then unreachable too.
                    ok, said, reason = False, outcome.reason, outcome.reason
                state = "up" if ok else "down"
                if not ok:
                    down[lk.peer.name] = said
                lk.checked_at = now
            reason = text.clean(reason)  # it fits the column, one line in the log
            if (lk.state, lk.reason) != (state, reason):
                log.info("link %s: %s%s", lk.peer.name, state, f" ({reason})" if reason else "")
                lk.state, lk.reason = state, reason
    return down


def _family(address: str) -> int | None:
    """4 or 6 (None: not an address, stored by an older agent; the peer is not held to it)."""
    try:
        return ipaddress.ip_address(address).version
    except ValueError:
        return None
