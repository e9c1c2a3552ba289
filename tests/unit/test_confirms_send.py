"""The confirmations of one pass (reconciler/confirms.send): every peer asked at the same time,
each one's answer used, and a peer's failure kept to that peer."""

from __future__ import annotations

import threading

from intercloud.federation.answers import BadAnswer, ReplicaView
from intercloud.federation.peers import PeerRef
from intercloud.reconciler import confirms
from intercloud.reconciler.memory import Memory
from intercloud.reconciler.targets import TargetWork

PEERS = ("B", "C", "D")


class Client:
    def __init__(self, name: str, met: threading.Barrier, failing: set[str]) -> None:
        self.name, self.met, self.failing = name, met, failing

    def confirm_replicas(self, bodies):
        self.met.wait()  # every peer's call in flight at once, or this breaks (timeout)
        if self.name in self.failing:
            raise BadAnswer(f"peer {self.name}: bad answer to confirmations: replicas: no list")
        return {uid: ReplicaView("active", int(uid.split("-")[1])) for uid in bodies}


class Federation:
    def __init__(self, failing: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.met = threading.Barrier(len(PEERS), timeout=10)
        self.failing = failing

    def peer(self, ref: PeerRef) -> Client:
        return Client(ref.name, self.met, self.failing)


def works() -> list[TargetWork]:
    return [
        TargetWork(
            i,
            f"{peer}-{100 + i}",
            "p1",
            f"net{i}",
            "10.10.0.0/24",
            None,
            100 + i,
            False,
            PeerRef(peer, f"https://{peer.lower()}.example:8700", "k" * 32),
            "active",
        )
        for i, peer in enumerate(PEERS * 2, 1)
    ]


def test_every_peer_is_asked_at_the_same_time_and_each_answer_is_used():
    memory = Memory()
    out = confirms.send(Federation(), memory, works(), now=50.0)  # type: ignore[arg-type]
    assert sorted(out.views) == [1, 2, 3, 4, 5, 6] and out.one_by_one == []
    assert all(v.status == "active" for v in out.views.values())
    assert memory.confirmed_at == dict.fromkeys(range(1, 7), 50.0)


def test_a_peer_that_fails_sends_its_own_replicas_one_by_one_and_only_its_own():
    memory, errors = Memory(), []
    out = confirms.send(Federation({"C"}), memory, works(), now=50.0, errors=errors)  # type: ignore[arg-type]
    assert sorted(w.target_id for w in out.one_by_one) == [2, 5]  # C's
    assert sorted(out.views) == [1, 3, 4, 6]
    assert memory.unbatched == {"C": 50.0}
    assert errors == ["peer C: bad answer to confirmations: replicas: no list"]
