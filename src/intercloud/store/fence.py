"""Gateway HA: every database write of a gateway is fenced by its lease token (docs/ha.md).

A writing pass or an API write that began while this gateway was active may reach its commit
after it stepped down and another gateway took over. So the commit of every transaction that
writes first reads the cloud's lease row in the same transaction, `FOR KEY SHARE`: the row
must still name this gateway with the token it holds. The lock keeps the token so until the
commit: a takeover writes a new token, a column of a unique index (migration 0010), which
PostgreSQL does under FOR UPDATE, so it waits for every write in flight to commit. Every
committed write therefore happened while the lease was this gateway's.

Not FOR SHARE: that conflicts with every UPDATE of the row, the active's own renewal too, and
PostgreSQL lets new share lockers pass a waiting updater: 15 concurrent writers held a renewal
for up to 5 s (seconds past the step-down time). A renewal keeps the token (FOR NO KEY UPDATE)
and does not wait for the fence.

The check runs just before the commit (Store's `before_commit`), not at the first flush: the
lock is then held for the last flush and the COMMIT only, not for the whole transaction (a
pass may flush early and then call a peer). A transaction's writes are invisible to others
until its commit, so when it flushed them does not matter. A standby's write is refused
without taking the lock. Reads are never fenced (a standby serves them); neither is the
lease's own connection (store/leases.py), which is not the Store's."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from intercloud.errors import Fenced
from intercloud.store import models as m

Token = Callable[[], int | None]  # the token this gateway holds now; None: standby


class Fence:
    """The lease of gateway `gateway` of cloud `cloud`, checked before every writing commit."""

    def __init__(self, cloud: str, gateway: str, token: Token) -> None:
        self.cloud = cloud
        self.gateway = gateway
        self.token = token
        self._row = select(m.GatewayLease.holder, m.GatewayLease.token).where(
            m.GatewayLease.cloud == cloud
        )
        self._locked = self._row.with_for_update(read=True, key_share=True)  # FOR KEY SHARE

    def check(self, session: Session) -> None:
        """Raise Fenced unless the lease row names us with our token; on success the row
        stays key-share-locked by `session`'s transaction until it ends."""
        mine = self.token()
        with session.no_autoflush:  # the commit flushes after the check, under the lock
            row = session.execute(self._row if mine is None else self._locked).first()
        holder, held = (row[0], int(row[1])) if row is not None else (None, None)
        why = refusal(self.cloud, self.gateway, mine, holder, held)
        if why is not None:
            raise Fenced(why, active=holder)


def refusal(
    cloud: str, gateway: str, mine: int | None, holder: str | None, held: int | None
) -> str | None:
    """Why a write of `gateway` holding token `mine` (None: standby) must be refused, given
    the lease row's `holder` and `held` token (both None: no row); None: it may commit."""
    if mine is not None and holder == gateway and held == mine:
        return None
    state = "not the active gateway" if mine is None else "no longer the active gateway"
    ours = "standby" if mine is None else f"lease token {mine}"
    row = "no lease row" if held is None else f"held: {holder or 'nobody'} token {held}"
    return f"gateway {gateway} is {state} of {cloud} ({ours}, {row}); write refused"


def writes(session: Session, wrote: bool) -> bool:
    """Whether committing `session` writes: it flushed or ran an INSERT/UPDATE/DELETE
    (`wrote`, which Store tracks), or its commit's own flush will write pending changes."""
    if wrote or session.new or session.deleted:
        return True
    return any(session.is_modified(obj) for obj in session.dirty)


__all__ = ["Fence", "Token", "refusal", "writes"]
