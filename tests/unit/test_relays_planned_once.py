"""reconciler/relays.plan: networks with the same members and the same edges are planned once
and share the routes; each network still gets exactly the routes its own plan gives."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from intercloud.domain import relay
from intercloud.reconciler import relays
from intercloud.store.rows import ExpansionRow, TargetRow


def target(tid: int, exp_id: int, peer: str, direct: list[str] | None = None) -> TargetRow:
    return TargetRow(
        tid, exp_id, peer, f"https://{peer}", "k", None, 5000 + tid, "active", "",
        direct, None, None, None, None, None,
    )  # fmt: skip


def expansion(exp_id: int, *targets: TargetRow) -> ExpansionRow:
    return ExpansionRow(
        exp_id, f"uid{exp_id}", "p1", f"net{exp_id}", "10.0.0.0/24", None, None, False, None,
        targets,
    )  # fmt: skip


class Rows:
    def __init__(self, rows: list[ExpansionRow]) -> None:
        self.rows = rows

    def live(self) -> list[ExpansionRow]:
        return self.rows


class Session:
    def get(self, *_: Any) -> None:
        return None


class Store:
    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        yield Session()


NETWORKS = [
    expansion(1, target(1, 1, "B")),
    expansion(2, target(2, 2, "B")),
    expansion(3, target(3, 3, "B", ["C"]), target(4, 3, "C", ["B"])),  # B-C direct
    expansion(4, target(5, 4, "B"), target(6, 4, "C")),  # no direct tunnel
    expansion(5, target(7, 5, "B"), target(8, 5, "C")),
    expansion(6, target(9, 6, "C")),
]


def own_plan(exp: ExpansionRow, down: dict[str, str]) -> relay.Routes:
    edges = {frozenset(("A", t.peer)) for t in exp.targets if t.peer not in down}
    edges |= relay.direct_pairs({t.peer: t.direct or [] for t in exp.targets})
    return relay.plan("A", [t.peer for t in exp.targets], edges)


def test_each_network_gets_its_own_routes_planned_once_per_kind(monkeypatch):
    calls: list[tuple] = []
    real = relay.plan

    def counted(origin, members, edges):
        calls.append((tuple(members), frozenset(edges)))
        return real(origin, members, edges)

    monkeypatch.setattr(relay, "plan", counted)
    for down in ({}, {"C": "no answer"}):
        calls.clear()
        planned, _ = relays.plan(Store(), Rows(NETWORKS), "A", down)  # type: ignore[arg-type]
        assert len(calls) == len(set(calls)) == 4  # B; B+C direct; B+C; C
        for exp in NETWORKS:
            assert planned[exp.id] == own_plan(exp, down), (exp.id, down)
    # with C down, B+C direct still has B-C: A reaches C through B; without it, unreachable
    assert planned[3].forward["B"] == {("A", "C"), ("C", "A")}
    assert planned[4] is planned[5]
