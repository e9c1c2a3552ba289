"""How the OpenStack driver marks what it makes (found again by tag, never by name alone)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

TAG = "intercloud"  # on every project and network made for a replica
UID_TAG = "intercloud-uid="  # + the replica's uid, on its network
REMOTE_OWNER = "intercloud:remote"  # device_owner of the placeholder ports


def uid_from(tags: Iterable[str]) -> str | None:
    for tag in tags or ():
        if tag.startswith(UID_TAG):
            return tag[len(UID_TAG) :]
    return None


def pools_of(pools: Iterable[Any]) -> tuple[tuple[str, str], ...]:
    """A subnet's allocation pools as sorted (start, end) pairs."""
    return tuple(sorted((p["start"], p["end"]) for p in pools or ()))
