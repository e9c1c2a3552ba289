"""The origin's confirmations, one call per peer (reconciler/confirms.py), against a fake
peer: chunks, what is confirmed, what goes one PUT each."""

from __future__ import annotations

from intercloud.errors import PeerError
from intercloud.federation import answers
from intercloud.federation.peers import PeerRef
from intercloud.reconciler import confirms
from intercloud.reconciler.memory import PEER_REFRESH, Memory
from intercloud.reconciler.targets import TargetWork


class FakePeer:
    def __init__(self, answer) -> None:
        self.answer = answer
        self.asked: list[list[str]] = []

    def confirm_replicas(self, bodies):
        self.asked.append(list(bodies))
        if isinstance(self.answer, Exception):
            raise self.answer
        return {uid: self.answer(uid) for uid in bodies}


class FakeFederation:
    def __init__(self, peer: FakePeer) -> None:
        self.one = peer

    def peer(self, ref):
        return self.one


def _work(i: int, peer: str = "B") -> TargetWork:
    return TargetWork(
        i, f"u{i}", "p1", f"net{i}", "10.0.0.0/24", None, 100 + i, False,
        PeerRef(peer, f"https://{peer}", "k" * 32), "active", ("A", peer), ("A", peer),
    )  # fmt: skip


def test_up_to_the_limit_per_call_and_each_vni_checked():
    peer = FakePeer(lambda uid: answers.ReplicaView("active", 100 + int(uid[1:])))
    works = [_work(i) for i in range(1, 251)]
    memory = Memory()
    got = confirms.send(FakeFederation(peer), memory, works, 5.0)  # type: ignore[arg-type]
    assert [len(c) for c in peer.asked] == [100, 100, 50]
    assert len(got.views) == 250 and got.one_by_one == []
    assert all(memory.confirmed_at[i] == 5.0 for i in range(1, 251))


def test_another_vni_or_a_refusal_goes_one_by_one():
    said = {"u1": answers.ReplicaView("active", 999), "u2": None}
    peer = FakePeer(lambda uid: said.get(uid, answers.ReplicaView("active", 100 + int(uid[1:]))))
    memory = Memory()
    works = [_work(i) for i in (1, 2, 3)]
    got = confirms.send(FakeFederation(peer), memory, works, 5.0)  # type: ignore[arg-type]
    assert [w.target_id for w in got.one_by_one] == [1, 2] and list(got.views) == [3]
    assert set(memory.confirmed_at) == {3}


def test_a_failed_call_goes_one_by_one_and_a_bad_answer_is_reported():
    bad = answers.BadAnswer("peer B: bad answer to confirmations: uid: must be one of ...")
    for exc, reported in ((bad, [bad.message]), (PeerError("peer B unreachable"), [])):
        memory, errors = Memory(), []
        peer = FakePeer(exc)
        got = confirms.send(FakeFederation(peer), memory, [_work(1)], 5.0, errors)  # type: ignore[arg-type]
        assert [w.target_id for w in got.one_by_one] == [1] and errors == reported
        assert not confirms.batched(memory, "B", 5.0 + PEER_REFRESH - 1)
        assert confirms.batched(memory, "B", 5.0 + PEER_REFRESH)
        assert confirms.batched(memory, "C", 5.0)
