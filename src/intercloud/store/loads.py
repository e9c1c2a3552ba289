"""Queries a reconciler pass walks whole: each relation it follows is loaded for all rows in
one more query (selectin), not lazily per row (1,000 expansions: 1,000 queries per walk)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from intercloud.store import models as m

# every expansion with its targets and their peers
EXPANSIONS_WITH_TARGETS = select(m.Expansion).options(
    selectinload(m.Expansion.targets).selectinload(m.Target.peer)
)
