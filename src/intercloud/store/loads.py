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

# what an expansion's view reads (service/views.py): targets, their peers and agreements; a
# project's list of 3,333 expansions was 3,333 lazy loads, rebuilt after every write
EXPANSION_VIEWS = select(m.Expansion).options(
    selectinload(m.Expansion.targets).selectinload(m.Target.peer).selectinload(m.Peer.agreement)
)

# what a replica's view reads: its peer and its project
REPLICA_VIEWS = select(m.Replica).options(
    selectinload(m.Replica.peer), selectinload(m.Replica.project)
)
