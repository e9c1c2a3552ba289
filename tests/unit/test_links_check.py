"""The links phase's health checks (reconciler/links.check): every peer asked at the same time
(a pass waits for one timeout, however many peers are unreachable), each answer applied to
its own link, and a peer that fails kept to that peer."""

from __future__ import annotations

import dataclasses
import threading

from sqlalchemy import select

from intercloud.errors import PeerError
from intercloud.federation import answers
from intercloud.federation.answers import BadAnswer
from intercloud.federation.peers import PeerRef
from intercloud.reconciler import links
from intercloud.reconciler.memory import Memory
from intercloud.reconciler.parts import PassResult
from intercloud.store import models as m
from tests.functional.federation_harness import Router, make_agent, peer

PEERS = ("B", "C", "D")


class Client:
    def __init__(self, name: str, federation: Federation) -> None:
        self.name, self.federation = name, federation

    def health(self, family: int | None = None) -> answers.Health:
        self.federation.asked.append(self.name)
        self.federation.met.wait()  # every peer's check in flight at once, or this breaks
        if self.name == "C":
            raise PeerError("peer C unreachable (timed out)")
        if self.name == "D":
            raise BadAnswer("peer D: bad answer to health: name: is not the name this peer has")
        return answers.Health(self.name, "198.18.9.2", 0.0)


class Federation:
    def __init__(self, peers: int) -> None:
        self.met = threading.Barrier(peers, timeout=10)
        self.asked: list[str] = []

    def peer(self, ref: PeerRef) -> Client:
        return Client(ref.name, self)


def test_every_peer_is_checked_at_the_same_time_and_each_answer_goes_to_its_link(tmp_path):
    router = Router()
    a = make_agent(tmp_path, router, "A", 1)
    others = [make_agent(tmp_path, router, name, i) for i, name in enumerate(PEERS, 2)]
    try:
        for other in others:
            peer(a, other)
        parts = dataclasses.replace(a.ctx.reconciler._parts(), federation=Federation(3))
        memory, result = Memory(), PassResult()
        health = links.check(parts, memory, result, skip=set())
        assert sorted(parts.federation.asked) == list(PEERS)  # type: ignore[attr-defined]
        with parts.store.session() as s:
            by_peer = {lk.peer.name: health[lk.id] for lk in s.scalars(select(m.Link))}
        assert by_peer["B"] == links.ANSWERS
        assert not by_peer["C"].answers and "unreachable" in by_peer["C"].said
        assert not by_peer["D"].answers
        assert result.peer_errors == [
            "peer D: bad answer to health: name: is not the name this peer has"
        ]
        assert [key[1] for key in memory.healthy_at] == ["http://198.18.2.2:8700"]  # B only
        # B's answer told its tunnel endpoint: learnt for B's link alone
        with parts.store.session() as s:
            learnt = {lk.peer.name: lk.peer_tunnel_endpoint for lk in s.scalars(select(m.Link))}
        assert learnt["B"] == "198.18.9.2" and learnt["C"] != "198.18.9.2", learnt
    finally:
        for agent in (a, *others):
            agent.ctx.store.dispose()


def test_one_peer_alone_is_asked_in_the_pass_s_own_thread(tmp_path):
    router = Router()
    a = make_agent(tmp_path, router, "A", 1)
    b = make_agent(tmp_path, router, "B", 2)
    try:
        peer(a, b)
        parts = dataclasses.replace(a.ctx.reconciler._parts(), federation=Federation(1))
        seen: list[str] = []
        real = parts.federation.peer

        def peer_here(ref: PeerRef) -> Client:
            seen.append(threading.current_thread().name)
            return real(ref)

        parts.federation.peer = peer_here  # type: ignore[method-assign]
        health = links.check(parts, Memory(), PassResult(), skip=set())
        assert list(health.values()) == [links.ANSWERS]
        assert seen == [threading.current_thread().name]
    finally:
        for agent in (a, b):
            agent.ctx.store.dispose()
