"""VNI allocations: one row per VNI in use on this agent, keyed by its owner (domain/owners.py,
stored as `str(owner)`) — a target "t:<id>" (origin side), a replica "r:<id>" (replica side)
or an adjacency "a:<id>" (a direct tunnel between two members). Every place that takes,
agrees or gives back a VNI goes through here."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, func, literal, select, union
from sqlalchemy.orm import Session

from intercloud.domain import validation as v
from intercloud.domain import vni as vnis
from intercloud.domain.owners import Owner
from intercloud.errors import Conflict, Invalid
from intercloud.store import models as m


def release(s: Session, *owners: Owner) -> None:
    keys = [str(o) for o in owners]
    s.query(m.VniAllocation).filter(m.VniAllocation.owner.in_(keys)).delete()


def used_by_others(s: Session, owner: Owner) -> list[int]:
    """The VNIs in use here except `owner`'s: what a peer must not choose for it."""
    query = select(m.VniAllocation.vni).where(m.VniAllocation.owner != str(owner))
    return sorted(s.scalars(query))


OFFER_WIDTH = 1024  # VNIs a peer chooses among when it makes a new replica


def offer(
    s: Session, owner: Owner, low: int, high: int, width: int | None = None
) -> tuple[int, int, list[int]]:
    """What to offer a peer that chooses a new VNI for `owner`: the part of low-high that starts
    at the lowest VNI free here and is `width` (OFFER_WIDTH) wide, and the VNIs in use in it
    (by others). An agreement then carries at most `width` VNIs, not every one in use here
    (10,000 expansions: 10,000 VNIs in each call, written, sent, parsed and checked twice).
    Conflict if none is free here."""
    others = m.VniAllocation.owner != str(owner)
    start = _lowest_free(s, others, low, high)
    if start is None:
        raise Conflict(f"vni: no free VNI left in {low}-{high}", field="vni")
    top = min(high, start + (width or OFFER_WIDTH) - 1)
    inside = select(m.VniAllocation.vni).where(others, m.VniAllocation.vni.between(start, top))
    return start, top, sorted(s.scalars(inside))


def _lowest_free(s: Session, others: Any, low: int, high: int) -> int | None:
    """The lowest VNI in low-high that no row matching `others` holds: `low`, or one above a
    VNI in use (asked of the database: it holds every row already, and an index on vni)."""
    taken = select(m.VniAllocation.vni).where(others)
    above = select((m.VniAllocation.vni + 1).label("c")).where(others)
    candidates = union(select(literal(low, Integer).label("c")), above).subquery()
    c = candidates.c.c
    query = select(func.min(c)).where(c.between(low, high), c.not_in(taken))
    found = s.scalar(query)
    return int(found) if found is not None else None


def take(s: Session, owner: Owner, vni: int) -> None:
    """`owner` now holds `vni` (a VNI the peer chose); IntegrityError if taken meanwhile."""
    release(s, owner)
    s.flush()
    s.add(m.VniAllocation(vni=vni, owner=str(owner)))


def excluded(exclude: Any) -> set[int]:
    """The `exclude` list of an agreement request, validated."""
    if not isinstance(exclude, list) or len(exclude) > 100000:
        raise Invalid("exclude: must be a list of VNIs", field="exclude")
    return {v.vni(x, "exclude") for x in exclude}


def agree(
    s: Session,
    owner: Owner,
    current: int | None,
    exclude: set[int],
    requested: int | None,
    low: int,
    high: int,
) -> int:
    """The answering side of a VNI agreement: keep `current` unless the caller cannot use it
    (or asked for another, or our vni range no longer holds it), else the requested one if
    free here and in low-high (409 if not, the same answer either way), else the lowest free
    here and outside `exclude`."""
    usable = current is not None and current not in exclude and low <= current <= high
    if current is not None and usable and requested in (None, current):
        return current
    release(s, owner)
    s.flush()
    used = set(s.scalars(select(m.VniAllocation.vni)))
    chosen = vnis.agree(used, exclude, requested, low, high)
    s.add(m.VniAllocation(vni=chosen, owner=str(owner)))
    return chosen
