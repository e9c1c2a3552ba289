"""Which clouds of one expanded network talk directly and which through the origin.

A network spans its origin and its targets (the members). The origin has a link to every
target; two targets may have a link of their own. Rules, loop-free by construction:

* Two targets that both report a working direct tunnel to each other exchange the network's
  traffic over it (full mesh with split horizon: a target never forwards from one tunnel to
  another; its tunnel ports are isolated bridge ports).
* Every other pair of targets talks through the origin, the only member that relays: its
  bridge forwards between its tunnel ports except between targets that talk directly.

So a frame crosses at most one relay, and each member receives every broadcast exactly once:
directly, or through the origin, never both. When a direct tunnel goes down, its two ends
stop reporting it and the origin relays them again; when it returns, so does the direct path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import combinations


def direct_pairs(direct: Mapping[str, Iterable[str]]) -> set[frozenset[str]]:
    """Pairs of targets that both say they reach the other directly."""
    said = {name: set(peers) for name, peers in direct.items()}
    return {
        frozenset((a, b)) for a, b in combinations(sorted(said), 2) if b in said[a] and a in said[b]
    }


def paths(origin: str, direct: Mapping[str, Iterable[str]]) -> list[dict[str, object]]:
    """The path between every two members: `via` is the relaying cloud, None when direct.
    `direct` maps each target to the members it reports reaching directly."""
    pairs = direct_pairs(direct)
    out: list[dict[str, object]] = [{"between": [origin, t], "via": None} for t in sorted(direct)]
    for a, b in combinations(sorted(direct), 2):
        out.append({"between": [a, b], "via": None if frozenset((a, b)) in pairs else origin})
    return out


def no_relay(ports: Mapping[str, str], pairs: Iterable[frozenset[str]]) -> set[tuple[str, str]]:
    """(in port, out port) pairs the origin's bridge must not forward between: those of
    targets that talk directly (`pairs`). `ports` maps a target to the origin's port to it."""
    out: set[tuple[str, str]] = set()
    for pair in pairs:
        a, b = sorted(pair)
        if a in ports and b in ports:
            out |= {(ports[a], ports[b]), (ports[b], ports[a])}
    return out
