"""Federation calls are authenticated both ways: requests (method, path, query, both agents'
names, time, nonce, body) and answers (status, body, both names, the request's nonce)."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from intercloud.errors import PeerError
from intercloud.federation import signing
from intercloud.federation.peers import Federation, PeerRef
from tests.functional.federation_harness import Router, make_agent, peer

HEALTH = "/v1/federation/health"
REPLICA = "/v1/federation/replicas/0b6f3a52-0000-4000-8000-000000000001"
BODY = {"project": "p1", "network": "net1", "cidr": "10.10.0.0/24"}


@pytest.fixture
def trio(tmp_path):
    router = Router()
    agents = [make_agent(tmp_path, router, n, i) for i, n in enumerate("ABC", start=1)]
    a, b, c = agents
    peer(a, b, projects=("p1",))
    peer(a, c, projects=("p1",))
    yield router, a, b, c
    for agent in agents:
        agent.ctx.store.dispose()


def key_of(agent, peer_name: str) -> str:
    from sqlalchemy import select

    from intercloud.store import models as m

    with agent.ctx.store.session() as s:
        return s.scalar(select(m.Peer.key).where(m.Peer.name == peer_name))


def send(agent, method, target, headers, content=b""):
    return agent.http.request(
        method, target, content=content, headers={**headers, "Content-Type": "application/json"}
    )


def test_an_authentic_answer_is_signed_over_status_body_and_our_nonce(trio):
    _, a, b, _ = trio
    key = key_of(b, "A")
    h = signing.sign("A", "B", key, "GET", HEALTH, b"")
    r = send(b, "GET", HEALTH, h)
    assert r.status_code == 200
    sig = r.headers[signing.HEADER_ANSWER_SIGNATURE]
    nonce = h[signing.HEADER_NONCE]
    assert signing.check_answer(key, "B", "A", nonce, 200, r.content, sig)
    # the same signature does not fit another status, body, nonce or pair of names
    assert not signing.check_answer(key, "B", "A", nonce, 404, r.content, sig)
    assert not signing.check_answer(key, "B", "A", nonce, 200, r.content + b" ", sig)
    assert not signing.check_answer(key, "B", "A", "0" * 32, 200, r.content, sig)
    assert not signing.check_answer(key, "C", "A", nonce, 200, r.content, sig)
    # errors after authentication are signed too: a forged 404 cannot make us forget a replica
    h = signing.sign("A", "B", key, "GET", REPLICA, b"")
    r = send(b, "GET", REPLICA, h)
    assert r.status_code == 404
    assert signing.check_answer(
        key,
        "B",
        "A",
        h[signing.HEADER_NONCE],
        404,
        r.content,
        r.headers.get(signing.HEADER_ANSWER_SIGNATURE),
    )


class Forger(httpx.BaseTransport):
    """A man in the middle: passes requests on, and rewrites the answers as told."""

    def __init__(self, inner: httpx.BaseTransport, rewrite) -> None:
        self.inner, self.rewrite = inner, rewrite

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        resp = self.inner.handle_request(request)
        return self.rewrite(request, resp)


def forged_body(_req, resp):
    data = json.loads(resp.content)
    data["tunnel_endpoint"] = "198.18.66.6"  # right shape, other content
    headers = {k: v for k, v in resp.headers.items() if k.lower() != "content-length"}
    return httpx.Response(resp.status_code, headers=headers, content=json.dumps(data).encode())


def unsigned(_req, resp):
    headers = {
        k: v
        for k, v in resp.headers.items()
        if k.lower() != signing.HEADER_ANSWER_SIGNATURE.lower()
    }
    return httpx.Response(resp.status_code, headers=headers, content=resp.content)


def forged_404(_req, resp):
    return httpx.Response(404, json={"error": {"code": "not_found", "message": "gone"}})


class Replayer:
    """Keeps the first answer and gives it again (with its valid signature) to later calls."""

    def __init__(self) -> None:
        self.first: httpx.Response | None = None

    def __call__(self, _req, resp):
        if self.first is None:
            self.first = resp
        return httpx.Response(
            self.first.status_code, headers=self.first.headers, content=self.first.content
        )


@pytest.mark.parametrize("rewrite", [forged_body, unsigned, forged_404, "replayed"])
def test_a_forged_answer_is_refused(trio, rewrite):
    router, a, _, _ = trio
    if rewrite == "replayed":
        rewrite = Replayer()
        Federation("A", transport=Forger(router, rewrite), plain_http=True).peer(
            PeerRef("B", "http://198.18.2.2:8700", key_of(a, "B"))
        ).request("GET", HEALTH)
    federation = Federation("A", transport=Forger(router, rewrite), plain_http=True)
    with pytest.raises(PeerError) as info:
        federation.peer(PeerRef("B", "http://198.18.2.2:8700", key_of(a, "B"))).request(
            "GET", HEALTH
        )
    unsigned_error = rewrite is forged_404
    expected = "HTTP 404 (unsigned)" if unsigned_error else "answer not authenticated"
    assert expected in info.value.message
    assert info.value.status is None  # not believed: not even its status


def test_a_forged_answer_changes_nothing_and_the_link_says_why(trio):
    router, a, _, _ = trio
    a.reconcile()
    with a.ctx.store.session() as s:
        from intercloud.store import models as m

        before = {lk.peer.name: lk.peer_tunnel_endpoint for lk in s.query(m.Link)}
    a.ctx.reconciler.federation = Federation(
        "A", transport=Forger(router, forged_body), plain_http=True
    )
    a.ctx.reconciler.memory.healthy_at.clear()  # ask again now
    a.reconcile()
    links = {x["peer"]: x for x in a.admin("GET", "/v1/links").json()}
    assert links["B"]["status"]["state"] == "down"
    assert "answer not authenticated" in links["B"]["status"]["reason"]
    with a.ctx.store.session() as s:
        after = {lk.peer.name: lk.peer_tunnel_endpoint for lk in s.query(m.Link)}
    assert after == before
    assert "198.18.66.6" not in json.dumps(a.admin("GET", "/v1/links").json())


def test_a_request_replayed_to_another_agent_is_refused(trio):
    """B and C both know A by the same key (an operator who reused it): a request A signed for
    B, replayed to C within the clock window and with an unseen nonce there, is refused."""
    _, a, b, c = trio
    from sqlalchemy import update

    from intercloud.store import models as m

    with c.ctx.store.session() as s:
        s.execute(update(m.Peer).where(m.Peer.name == "A").values(key=key_of(b, "A")))
    content = json.dumps(BODY).encode()
    h = signing.sign("A", "B", key_of(b, "A"), "PUT", REPLICA, content)
    r = send(c, "PUT", REPLICA, h, content)
    assert r.status_code == 401, r.text
    assert c.admin("GET", "/v1/replicas").json() == []
    assert send(b, "PUT", REPLICA, h, content).status_code == 201  # where it was meant to go


def test_a_changed_query_string_is_refused(trio):
    _, _, b, _ = trio
    key = key_of(b, "A")
    h = signing.sign("A", "B", key, "GET", HEALTH + "?x=1", b"")
    assert send(b, "GET", HEALTH + "?evil=1", h).status_code == 401
    h = signing.sign("A", "B", key, "GET", HEALTH + "?b=2&a=1", b"")
    assert send(b, "GET", HEALTH + "?a=1&b=2", h).status_code == 200  # canonical: same pairs


def test_every_refusal_answers_alike_and_the_log_says_which(trio, caplog):
    _, _, b, _ = trio
    key = key_of(b, "A")
    content = json.dumps(BODY).encode()
    good = signing.sign("A", "B", key, "PUT", REPLICA, content)
    cases = {
        "unknown peer": signing.sign("Mallory", "B", "m" * 32, "PUT", REPLICA, content),
        "bad signature": signing.sign("A", "B", "w" * 32, "PUT", REPLICA, content),
        "bad nonce": {**good, signing.HEADER_NONCE: "not-hex"},
        "timestamp outside": signing.sign("A", "B", key, "PUT", REPLICA, content, now=1e6),
    }
    answers = set()
    caplog.set_level(logging.WARNING, logger="intercloud.api")
    for why, headers in cases.items():
        caplog.clear()
        r = send(b, "PUT", REPLICA, headers, content)
        assert r.status_code == 401
        answers.add(r.content)
        assert any(why in rec.getMessage() for rec in caplog.records), why
    assert send(b, "PUT", REPLICA, good, content).status_code == 201
    r = send(b, "PUT", REPLICA, good, content)  # replayed
    assert r.status_code == 401
    answers.add(r.content)
    assert len(answers) == 1, answers


def test_a_name_in_a_refused_header_cannot_forge_a_log_line(trio, caplog):
    _, _, b, _ = trio
    caplog.set_level(logging.WARNING, logger="intercloud.api")
    h = signing.sign("x", "B", "m" * 32, "GET", HEALTH, b"")
    h[signing.HEADER_PEER] = "x\nINFO intercloud: link B: up"
    assert send(b, "GET", HEALTH, h).status_code == 401
    h[signing.HEADER_PEER] = "x" * 5000
    assert send(b, "GET", HEALTH, h).status_code == 401
    messages = [rec.getMessage() for rec in caplog.records]
    assert len(messages) == 2
    assert all("\n" not in msg and len(msg) < 300 for msg in messages), messages


def test_an_answer_too_large_is_not_read_whole():
    sent = []

    def stream():
        for _ in range(64):  # 64 x 64 KiB = 4 MiB, past the limit halfway
            sent.append(1)
            yield b"x" * 65536

    def huge(request):
        return httpx.Response(200, content=stream())

    federation = Federation("A", transport=httpx.MockTransport(huge), plain_http=True)
    with pytest.raises(PeerError) as info:
        federation.peer(PeerRef("B", "http://198.18.2.2:8700", "k" * 32)).request("GET", HEALTH)
    assert "answer larger than" in info.value.message
    assert len(sent) < 40  # reading stopped at the limit
