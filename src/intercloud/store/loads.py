"""Queries the API's list views walk whole: each relation they follow is loaded for all rows
in one more query (selectin), not lazily per row (3,333 expansions: 3,333 queries per list).
The reconciler reads plain rows instead (store/rows.py)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from intercloud.store import models as m

# what an expansion's view reads (service/views.py): targets, their peers and agreements; a
# project's list of 3,333 expansions was 3,333 lazy loads, rebuilt after every write
EXPANSION_VIEWS = select(m.Expansion).options(
    selectinload(m.Expansion.targets).selectinload(m.Target.peer).selectinload(m.Peer.agreement)
)

# what a replica's view reads: its peer and its project
REPLICA_VIEWS = select(m.Replica).options(
    selectinload(m.Replica.peer), selectinload(m.Replica.project)
)
