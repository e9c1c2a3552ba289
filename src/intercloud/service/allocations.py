"""VNI allocations: one row per VNI in use on this agent, keyed by its owner (domain/owners.py,
stored as `str(owner)`) — a target "t:<id>" (origin side), a replica "r:<id>" (replica side)
or an adjacency "a:<id>" (a direct tunnel between two members). Every place that takes,
agrees or gives back a VNI goes through here."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from intercloud.domain import validation as v
from intercloud.domain import vni as vnis
from intercloud.domain.owners import Owner
from intercloud.errors import Invalid
from intercloud.store import models as m


def release(s: Session, *owners: Owner) -> None:
    keys = [str(o) for o in owners]
    s.query(m.VniAllocation).filter(m.VniAllocation.owner.in_(keys)).delete()


def used_by_others(s: Session, owner: Owner) -> list[int]:
    """The VNIs in use here except `owner`'s: what a peer must not choose for it."""
    query = select(m.VniAllocation.vni).where(m.VniAllocation.owner != str(owner))
    return sorted(s.scalars(query))


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
