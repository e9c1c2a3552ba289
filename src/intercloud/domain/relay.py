"""Which clouds of one expanded network talk directly, and which through whom.

A network spans its origin and its targets (the members). An edge is a usable tunnel between
two members: the origin's to each target whose link is up, and a direct tunnel between two
targets that both report it. Rules:

* Two members with an edge exchange the network's traffic over it (full mesh with split
  horizon: nobody forwards between two members that have their own edge).
* Any other pair goes through a relay that has an edge to both: the origin when it can (it
  has a link to every target by construction), else another member (the origin's own link to
  one of them is down). A relay forwards only the pairs it was given, between the two tunnel
  ports, both ways; a member that relays nothing has isolated ports.
* Relays may chain (C-B-A-D when C lost its link to A and D has none to B): a member forwards
  by the port a frame came in on, not by who sent it first, so each candidate relay is only
  kept if, for every source, every member still receives a broadcast at most once (checked by
  following the frames, `deliveries`). So no loop, no duplicate, whatever the graph.

When a link goes down its edge goes and the pairs it carried move to a relay; when it comes
back, so do the direct paths.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import combinations, permutations
from typing import Any

Pair = tuple[str, str]  # (in from, out to): a relay forwards frames from the first to the second

# Relays other than the origin are tried pair by pair, each time following every source's
# frames: fine for the handful of clouds a network spans, not for hundreds.
MAX_MEMBERS_FOR_OTHER_RELAYS = 32


def direct_pairs(direct: Mapping[str, Iterable[str]]) -> set[frozenset[str]]:
    """Pairs of targets that both say they reach the other directly."""
    said = {name: set(peers) for name, peers in direct.items()}
    return {
        frozenset((a, b)) for a, b in combinations(sorted(said), 2) if b in said[a] and a in said[b]
    }


@dataclass(frozen=True)
class Routes:
    forward: dict[str, frozenset[Pair]]  # member -> the pairs it relays (both directions)
    paths: list[dict[str, Any]]  # every pair of members: between, state, via


def _deliveries(
    source: str, adjacent: Mapping[str, set[str]], forward: Mapping[str, set[Pair]]
) -> dict[str, list[str]] | None:
    """Follow a broadcast from `source`: the route by which each member receives it, or None
    when some member would receive it twice (a duplicate or a loop)."""
    route = {source: [source]}
    todo = deque((n, source) for n in sorted(adjacent[source]))
    while todo:
        node, came_from = todo.popleft()
        if node in route:
            return None
        route[node] = [*route[came_from], node]
        for a, b in sorted(forward[node]):
            if a == came_from:
                todo.append((b, node))
    return route


def _adjacency(names: list[str], edges: Iterable[frozenset[str]]) -> dict[str, set[str]]:
    """Who has a link of their own to whom, among `names`."""
    adjacent: dict[str, set[str]] = {n: set() for n in names}
    for edge in edges:
        a, b = sorted(edge)
        if a in adjacent and b in adjacent and a != b:
            adjacent[a].add(b)
            adjacent[b].add(a)
    return adjacent


def _choose_relays(
    origin: str, names: list[str], adjacent: dict[str, set[str]]
) -> dict[str, set[Pair]]:
    """What each member forwards: a relay for each pair apart, only where no broadcast would
    then arrive anywhere twice."""
    forward: dict[str, set[Pair]] = {n: set() for n in names}

    def clean() -> bool:
        return all(_deliveries(s, adjacent, forward) is not None for s in names)

    def reached(a: str, b: str) -> bool:
        got = _deliveries(a, adjacent, forward)
        return got is not None and b in got

    apart = [(a, b) for a, b in combinations(names, 2) if b not in adjacent[a]]
    # The origin first: on its own it is always safe (nobody else forwards). Then others.
    others = [n for n in names if n != origin] if len(names) <= MAX_MEMBERS_FOR_OTHER_RELAYS else []
    for relays in ([origin], others):
        for a, b in apart:
            if reached(a, b):
                continue
            for r in relays:
                if r in (a, b) or a not in adjacent[r] or b not in adjacent[r]:
                    continue
                forward[r] |= {(a, b), (b, a)}
                if clean():
                    break
                forward[r] -= {(a, b), (b, a)}
    return forward


def plan(origin: str, members: Iterable[str], edges: Iterable[frozenset[str]]) -> Routes:
    """Relays and paths for one network (see the module's rules). Deterministic."""
    names = sorted(set(members) | {origin})
    adjacent = _adjacency(names, edges)
    forward = _choose_relays(origin, names, adjacent)
    routes = {s: _deliveries(s, adjacent, forward) or {s: [s]} for s in names}
    targets = [n for n in names if n != origin]
    pairs = [(origin, t) for t in targets] + list(combinations(targets, 2))
    paths: list[dict[str, Any]] = []
    for a, b in pairs:
        route = routes[a].get(b)
        if route is None:
            paths.append({"between": [a, b], "state": "unreachable", "via": []})
        else:
            via = route[1:-1]
            paths.append({"between": [a, b], "state": "relayed" if via else "direct", "via": via})
    return Routes({n: frozenset(p) for n, p in forward.items()}, paths)


def no_forward(ports: Mapping[str, str], forward: Iterable[Pair]) -> set[tuple[str, str]]:
    """(in port, out port) pairs a member's bridge must not forward between: all of its
    tunnel ports' pairs but those it relays. `ports` maps a member to our port to it."""
    allowed = set(forward)
    return {
        (ports[a], ports[b]) for a, b in permutations(sorted(ports), 2) if (a, b) not in allowed
    }
