"""Every expansion with its targets as plain rows, for the reconciler's walks over all of them.

Seven walks of a pass read every expansion and target (targets, relays twice, placeholders,
the wanted data plane, moves, statuses). As ORM objects each walk cost 2.7–4 s at 10,000
expansions (identity map, one object per row and relation); as rows of two Core queries
0.7 s. `ExpansionRows` reads them once per pass and again only after something was written
(`Store.generation`), so a pass that changes nothing reads them once, and each walk still
sees every write before it. Writes still go through the ORM (`session.get` by id), so the
store sees them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, String, select, type_coerce
from sqlalchemy.orm import Session

from intercloud.store import Store
from intercloud.store import models as m


@dataclass(frozen=True, slots=True)
class TargetRow:
    id: int
    expansion_id: int
    peer: str
    peer_url: str
    peer_key: str  # the federation key (a secret: never logged)
    peer_rate_mbit: float | None  # the agreement's default egress limit
    vni: int | None
    status: str
    reason: str
    direct: list[str] | None
    relays_sent: list[list[str]] | None
    peer_ports: list[list[str]] | None
    members_sent: list[str] | None
    pool: list[list[str]] | None
    addressing_sent: dict | None


@dataclass(frozen=True, slots=True)
class ExpansionRow:
    id: int
    uid: str
    project: str
    network: str
    cidr: str
    requested_vni: int | None
    rate_mbit: float | None
    deleting: bool
    paths: list[dict] | None
    targets: tuple[TargetRow, ...]

    def rate_to(self, t: TargetRow) -> float | None:
        """The expansion's own limit, else the agreement's per-project default
        (service/views.py `effective_rate`, for rows)."""
        return self.rate_mbit if self.rate_mbit is not None else t.peer_rate_mbit


def _json(column: Any, as_text: bool) -> Any:
    """A JSON column as the database holds it (SQLite: text, decoded by `_Texts`), or decoded
    by SQLAlchemy (PostgreSQL's driver decodes JSON itself)."""
    return type_coerce(column, String) if as_text else column


def _expansions(as_text: bool) -> Select:
    return select(
        m.Expansion.id, m.Expansion.uid, m.Expansion.project, m.Expansion.network,
        m.Expansion.cidr, m.Expansion.requested_vni, m.Expansion.rate_mbit, m.Expansion.deleting,
        _json(m.Expansion.paths, as_text),
    ).order_by(m.Expansion.id)  # fmt: skip


def _targets(as_text: bool) -> Select:
    return (
        select(
            m.Target.id,
            m.Target.expansion_id,
            m.Peer.name,
            m.Peer.federation_url,
            m.Peer.key,
            m.Agreement.default_rate_mbit,
            m.Target.vni,
            m.Target.status,
            m.Target.reason,
            *(
                _json(c, as_text)
                for c in (
                    m.Target.direct,
                    m.Target.relays_sent,
                    m.Target.peer_ports,
                    m.Target.members_sent,
                    m.Target.pool,
                    m.Target.addressing_sent,
                )
            ),
        )
        .join(m.Peer, m.Target.peer_id == m.Peer.id)
        .outerjoin(m.Agreement, m.Agreement.peer_id == m.Peer.id)
        .order_by(m.Target.id)
    )


_QUERIES = {as_text: (_expansions(as_text), _targets(as_text)) for as_text in (True, False)}


class _Texts(dict[str, Any]):
    """JSON texts decoded once per read: most rows hold the same few (`["A", "B"]`, `[]`, one
    path), so rows with the same text share its value (read-only, as the rows are). At 10,000
    expansions a read decoded 40,000 texts, half of its time, and made as many objects for the
    collector to walk."""

    def __missing__(self, text: str) -> Any:
        value = self[text] = json.loads(text)
        return value

    def value(self, text: Any) -> Any:
        return self[text] if isinstance(text, str) else text


def _same(value: Any) -> Any:
    return value


def read(s: Session) -> list[ExpansionRow]:
    """Every expansion (by id) with its targets (by id): two queries."""
    as_text = s.get_bind().dialect.name == "sqlite"
    expansions, targets = _QUERIES[as_text]
    value = _Texts().value if as_text else _same
    by_expansion: dict[int, list[TargetRow]] = {}
    for t in s.execute(targets):
        row = TargetRow(
            t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], value(t[9]), value(t[10]),
            value(t[11]), value(t[12]), value(t[13]), value(t[14]),
        )  # fmt: skip
        by_expansion.setdefault(row.expansion_id, []).append(row)
    return [
        ExpansionRow(
            e[0],
            e[1],
            e[2],
            e[3],
            e[4],
            e[5],
            e[6],
            e[7],
            value(e[8]),
            tuple(by_expansion.get(e[0], ())),
        )
        for e in s.execute(expansions)
    ]


class ExpansionRows:
    """The rows of one pass: read at its first walk, again only after a write since."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._kept: tuple[int, list[ExpansionRow]] | None = None
        self.reads = 0  # for tests: how often the database was read

    def new_pass(self) -> None:
        """Nothing read before this is reused (another process may have written)."""
        self._kept = None

    def all(self) -> list[ExpansionRow]:
        generation = self.store.generation  # first: a write during the read outdates it
        if self._kept is not None and self._kept[0] == generation:
            return self._kept[1]
        with self.store.session() as s:
            rows = read(s)
        self.reads += 1
        self._kept = (generation, rows)
        return rows

    def live(self) -> list[ExpansionRow]:
        """Those not being deleted."""
        return [e for e in self.all() if not e.deleting]
