"""Who owns a VNI, a tunnel port or a network's host objects: one typed key (kind + database
id) instead of strings built and parsed by hand.

Two spellings, both fixed by what already exists on hosts and in databases:
- `str(owner)`, e.g. ``t:12``: VNI allocations (stored), tunnel ports and their status;
- `owner.key`, e.g. ``e3``: a network's host objects (bridge ``icbe3``, patch ``icpe3``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    EXPANSION = "e"  # an expanded network at its origin
    TARGET = "t"  # the origin's tunnel to one peer of an expansion
    REPLICA = "r"  # a replica (its network, and its tunnel to the origin)
    ADJACENCY = "a"  # a direct tunnel between two members of a network


@dataclass(frozen=True, order=True)
class Owner:
    kind: Kind
    id: int

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.id}"

    @property
    def key(self) -> str:
        """The short spelling in host object names (a network's bridge and patch)."""
        return f"{self.kind.value}{self.id}"

    @classmethod
    def parse(cls, text: str) -> Owner:
        """The owner spelled `str(owner)` (``t:12``) or `owner.key` (``e3``)."""
        kind, sep, ident = text.partition(":")
        if not sep:
            kind, ident = text[:1], text[1:]
        if kind in Kind._value2member_map_ and ident.isascii() and ident.isdigit():
            return cls(Kind(kind), int(ident))
        raise ValueError(f"not an owner: {text!r}")


def expansion(ident: int) -> Owner:
    return Owner(Kind.EXPANSION, ident)


def target(ident: int) -> Owner:
    return Owner(Kind.TARGET, ident)


def replica(ident: int) -> Owner:
    return Owner(Kind.REPLICA, ident)


def adjacency(ident: int) -> Owner:
    return Owner(Kind.ADJACENCY, ident)
