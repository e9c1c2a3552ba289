"""A pass agrees at most AGREEMENTS_PER_PASS replicas with peers (reconciler/targets.py):
10,000 new expansions in one pass held it for 22 minutes. The rest wait, unsettled, for the
next pass, which starts with them (targets that stay pending cannot starve the others)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from intercloud.federation import answers
from intercloud.reconciler import targets
from intercloud.reconciler.memory import Memory
from intercloud.reconciler.parts import PassResult
from intercloud.store import Store
from intercloud.store import models as m
from intercloud.store.rows import ExpansionRows


class _Peer:
    vnis: dict[str, int] = {}  # uid -> the VNI agreed (one peer)

    def __init__(self, calls: list[str], confirmed: list[list[str]]) -> None:
        self.calls, self.confirmed = calls, confirmed

    def put_replica(self, uid, *_args) -> answers.ReplicaView:
        self.calls.append(uid)
        return answers.ReplicaView("pending", None)

    def agree_vni(self, uid, requested, used, vnis) -> int:
        self.vnis[uid] = vni = max(used, default=vnis[0] - 1) + 1
        return vni

    def confirm_replicas(self, bodies) -> dict[str, answers.ReplicaView | None]:
        self.confirmed.append(list(bodies))
        return {uid: answers.ReplicaView("pending", self.vnis[uid]) for uid in bodies}


class _Cloud:
    def network(self, project, network):
        return None  # standalone: nothing to tell about addresses


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/a.db")
    s.migrate()
    yield s
    s.dispose()


def test_a_pass_agrees_at_most_its_budget_and_the_next_pass_goes_on(store):
    total = targets.AGREEMENTS_PER_PASS + 50
    with store.session() as s:
        peer = m.Peer(name="B", federation_url="https://198.18.2.2:8700",
                      underlay_endpoint="198.18.2.2", key="k" * 32)  # fmt: skip
        s.add(peer)
        s.flush()
        for i in range(total):
            e = m.Expansion(uid=f"e{i}", project="p1", network=f"n{i}", cidr="10.0.0.0/24")
            e.targets = [m.Target(peer_id=peer.id)]
            s.add(e)
    calls: list[str] = []
    confirmed: list[list[str]] = []
    parts = SimpleNamespace(
        store=store,
        rows=ExpansionRows(store),
        me="A",
        cloud=_Cloud(),
        federation=SimpleNamespace(peer=lambda _ref: _Peer(calls, confirmed)),
        vnis=(100, 20000),
        clock=lambda: 1000.0,
    )
    memory = Memory()
    first = PassResult()
    agreed = targets.phase(parts, memory, first, down={}, rerouted_last_pass=())  # type: ignore[arg-type]
    assert len(calls) == len(agreed) == targets.AGREEMENTS_PER_PASS
    assert not first.settled  # the rest come at the next pass, soon
    second = PassResult()
    targets.phase(parts, memory, second, down={}, rerouted_last_pass=())  # type: ignore[arg-type]
    # the rest agreed (round robin: they come first); those agreed in the first pass, still
    # waiting for the peer, are asked again in one call per 100, outside the budget
    assert calls[targets.AGREEMENTS_PER_PASS :] == [
        f"e{i}" for i in range(targets.AGREEMENTS_PER_PASS, total)
    ]
    assert [len(c) for c in confirmed] == [100, 100]
    assert sorted(sum(confirmed, [])) == sorted(calls[: targets.AGREEMENTS_PER_PASS])
    with store.session() as s:
        vnis = [t.vni for t in s.query(m.Target)]
    assert None not in vnis and len(set(vnis)) == total
