"""Peer answers typed and checked at the boundary (federation/answers.py; issue 13, findings 4,
9 and 10): whatever a peer answers, a parser returns typed values or raises BadAnswer "peer B:
bad answer to <call>: <field>: <why>", one clean line that repeats none of the peer's text."""

from __future__ import annotations

import contextlib

import pytest

from intercloud.errors import PeerError
from intercloud.federation import answers
from tests.functional.hostile_peer import HOSTILE

MEMBERS = ("A", "B", "C")
PARSERS = {
    "health": lambda x: answers.health("B", x, 4),
    "replica": lambda x: answers.replica("B", x),
    "vni": lambda x: answers.vni("B", x, 1, 2**24 - 1),
    "relays": lambda x: answers.relays("B", x, MEMBERS),
    "adjacency": lambda x: answers.adjacency("B", x, 1, 2**24 - 1, ()),
    "direct": lambda x: answers.direct("B", x, ("C",)),
    "ports": lambda x: answers.ports("B", x, "10.10.0.0/24"),
    "flush": lambda x: answers.accepted("B", x, "flush"),
    "delete": lambda x: answers.accepted("B", x, "delete"),
    "confirmations": lambda x: answers.confirmations("B", x, ("u1", "u2")),
}
WELL_FORMED_REFUSAL = {"status": "error", "vni": None}  # a replica the peer could not build
ODD = [None, 0, -1, 1.5, True, "", "x\n" * 1000, [], [[]], {}, {"a": {"b": []}}, 2**80]


def _is_refusal(answer) -> bool:
    return isinstance(answer, dict) and WELL_FORMED_REFUSAL.items() <= answer.items()


@pytest.mark.parametrize(
    "call,answer",
    [x for x in HOSTILE if not _is_refusal(x[1]) or not isinstance(x[1].get("reason"), str)],
    ids=lambda x: x if isinstance(x, str) else None,
)
def test_every_hostile_answer_is_a_bad_answer(call, answer):
    with pytest.raises(answers.BadAnswer) as exc:
        PARSERS[call](answer)
    message = exc.value.message
    assert message.startswith(f"peer B: bad answer to {call}: "), message
    assert message.isprintable() and len(message) < 200
    assert not any(s in message for s in ("pwn", "$(", "x x", "forged", "\\n"))


@pytest.mark.parametrize("call", sorted(PARSERS))
@pytest.mark.parametrize("answer", ODD, ids=repr)
def test_odd_answers_raise_only_peer_errors(call, answer):
    with contextlib.suppress(PeerError):  # the only one allowed: no KeyError, TypeError...
        PARSERS[call](answer)


def test_honest_answers_are_typed():
    assert answers.health("B", {"name": "B", "tunnel_endpoint": "198.18.2.2"}, 4) == (
        answers.Health("B", "198.18.2.2")
    )
    assert answers.health("B", {"name": "B", "tunnel_endpoint": None}).tunnel_endpoint is None
    view = answers.replica("B", {"status": "active", "vni": 7, "reason": "", "members": []})
    assert view == answers.ReplicaView("active", 7, "")
    assert answers.vni("B", {"vni": 7}, 1, 10, requested=7, exclude=[3]) == 7
    got = answers.relays("B", {"relays": [["A", "C"]], "applied": None}, MEMBERS)
    assert got == answers.Relays({("A", "C")}, None)
    assert answers.direct("B", {"direct": ["C"]}, ("C",)) == ["C"]
    ports = answers.ports("B", {"ports": [["FA:16:3E:00:00:01", "10.10.0.5"]]}, "10.10.0.0/24")
    assert ports == [["fa:16:3e:00:00:01", "10.10.0.5"]]
    assert answers.accepted("B", {}, "flush") is None and answers.accepted("B", None, "x") is None


@pytest.mark.parametrize(
    "answer,why",
    [
        ({"vni": 11}, "from 1 to 10"),
        ({"vni": 3}, "said is in use"),
        ({"vni": 5}, "not the VNI requested"),
    ],
)
def test_a_vni_answer_outside_what_was_asked_is_refused(answer, why):
    with pytest.raises(answers.BadAnswer, match=why):
        answers.vni("B", answer, 1, 10, requested=None if why != "not the VNI requested" else 4,
                    exclude=[3])  # fmt: skip


def test_a_peers_reason_is_one_bounded_line():
    view = answers.replica("B", {"status": "error", "vni": None, "reason": "a\nb\r\x1b[31m" * 999})
    assert view.reason.isprintable() and len(view.reason) <= answers.PEER_REASON_MAX


def test_users_see_no_url_the_admin_sees_it_clean():
    exc = PeerError("peer B unreachable", detail="http://198.18.2.2:8700: [Errno 111]\nrefused")
    assert answers.reason(exc) == "peer B unreachable"
    admin = answers.admin_reason(exc)
    assert "198.18.2.2" in admin and admin.isprintable()


def test_a_confirmations_answer_is_typed_by_uid_and_a_refused_replica_is_none():
    answer = {
        "replicas": [
            {"uid": "u1", "status": "active", "vni": 7, "reason": ""},
            {"uid": "u2", "error": "project: 'p9' may not expand into this cloud"},
        ]
    }
    got = answers.confirmations("B", answer, ("u1", "u2", "u3"))
    assert got == {"u1": answers.ReplicaView("active", 7), "u2": None}  # u3: not confirmed


@pytest.mark.parametrize(
    "answer,where",
    [
        ({"replicas": {"u1": {}}}, "replicas"),
        ({"replicas": [{"uid": "u1", "status": "active", "vni": 1}] * 3}, "replicas"),
        ({"replicas": [{"uid": "u9", "status": "active", "vni": 1}]}, "uid"),
        ({"replicas": [{"uid": 1, "status": "active", "vni": 1}]}, "uid"),
        ({"replicas": [{"uid": "u1", "status": "pwned", "vni": 1}]}, "status"),
        ({"replicas": [{"uid": "u1", "status": "active", "vni": 2**24}]}, "vni"),
    ],
)
def test_a_confirmations_answer_about_other_replicas_or_bad_views_is_refused(answer, where):
    with pytest.raises(answers.BadAnswer, match=f"confirmations: {where}: "):
        answers.confirmations("B", answer, ("u1", "u2"))
