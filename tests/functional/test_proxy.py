"""The tenant API proxy with two whole agents in one process: A's user calls B's "Neutron"
(an in-memory stand-in that scopes by project as Neutron does) through both agents. The real
Keystone and Neutron are in tests/integration/test_openstack_proxy.py."""

from __future__ import annotations

import json
import logging
import threading
import tracemalloc
import uuid

import httpx
import pytest

from intercloud.domain.proxy import Answer, Call
from intercloud.errors import CloudError, Forbidden
from intercloud.federation import frames


class FakeNeutron:
    """Ports per project; another project's port is a 404, quotas are admin-only (403)."""

    def __init__(self) -> None:
        self.ports: dict[str, dict] = {}
        self.calls: list[tuple[str, Call]] = []
        self.down = False
        self.answer: Answer | None = None  # what to answer instead (a misbehaving service)

    def forward(self, project: str, call: Call, limit: int, timeout: float) -> Answer:
        self.calls.append((project, call))
        if self.down:
            raise CloudError("the network service is unreachable (ConnectError)")
        if call.service_type != "network":
            raise Forbidden("service_type: no such endpoint")
        if self.answer is not None:
            return self.answer
        return self._neutron(project, call)

    def _json(self, status: int, body: object) -> Answer:
        return Answer(
            status,
            (("content-type", "application/json"), ("x-openstack-request-id", "req-1")),
            json.dumps(body).encode(),
        )

    def _neutron(self, project: str, call: Call) -> Answer:
        parts = call.path.split("/")
        if parts[:2] == ["v2.0", "quotas"]:
            return self._json(403, {"NeutronError": {"message": "admin only"}})
        if parts == ["v2.0", "ports"] and call.method == "POST":
            port = {**json.loads(call.body)["port"], "id": str(uuid.uuid4())}
            port["project_id"] = project
            self.ports[port["id"]] = port
            return self._json(201, {"port": port})
        if parts == ["v2.0", "ports"] and call.method == "GET":
            mine = [p for p in self.ports.values() if p["project_id"] == project]
            fields = [v for k, v in call.query if k == "fields"]
            if fields:
                mine = [{k: p[k] for k in fields} for p in mine]
            return self._json(200, {"ports": mine})
        if parts[:2] == ["v2.0", "ports"] and len(parts) == 3:
            port = self.ports.get(parts[2])
            if port is None or port["project_id"] != project:
                return self._json(404, {"NeutronError": {"message": f"Port {parts[2]} not found"}})
            if call.method == "DELETE":
                del self.ports[parts[2]]
                return Answer(204)
            return self._json(200, {"port": port})
        return self._json(404, {"NeutronError": {"message": "not found"}})


@pytest.fixture
def expanded(pair):
    """A's p1 expanded net1 into B; B's cloud answers proxied calls from FakeNeutron."""
    a, b = pair
    neutron = FakeNeutron()
    b.ctx.cloud.forward = neutron.forward  # type: ignore[method-assign]
    r = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]})
    assert r.status_code == 201, r.text
    for _ in range(3):
        a.reconcile()
        b.reconcile()
    return a, b, neutron


def call(a, project, method, path, body=None, headers=None, token=None):
    h = {"X-Auth-Token": token or a.tokens[project], **(headers or {})}
    content = json.dumps(body).encode() if body is not None else None
    return a.http.request(method, f"/v1/proxy/{path}", content=content, headers=h)


def test_a_member_creates_lists_shows_and_deletes_a_port_in_the_replica(expanded):
    a, b, neutron = expanded
    r = call(
        a,
        "p1",
        "POST",
        "B/network/v2.0/ports",
        {"port": {"network_id": "n1", "name": "vm1"}},
        {"Content-Type": "application/json", "Cookie": "x=1", "X-Forwarded-For": "1.2.3.4"},
    )
    assert r.status_code == 201, r.text
    assert r.headers["x-openstack-request-id"] == "req-1"
    port = r.json()["port"]
    assert port["project_id"] == "A.p1"  # B acted as the replica of p1, nothing else
    project, made = neutron.calls[-1]
    assert project == "A.p1"
    # only the headers that matter went on: never the user's token, cookies or hop-by-hop
    assert dict(made.headers) == {"content-type": "application/json", "accept": "*/*"}
    r = call(a, "p1", "GET", "B/network/v2.0/ports?fields=id&fields=name")
    assert r.status_code == 200
    assert r.json() == {"ports": [{"id": port["id"], "name": "vm1"}]}
    assert neutron.calls[-1][1].query == (("fields", "id"), ("fields", "name"))
    assert call(a, "p1", "GET", f"B/network/v2.0/ports/{port['id']}").json()["port"] == port
    r = call(a, "p1", "DELETE", f"B/network/v2.0/ports/{port['id']}")
    assert r.status_code == 204 and r.content == b""
    assert neutron.ports == {}
    scrape = a.admin("GET", "/metrics").text
    assert (
        'intercloud_proxy_calls_total{peer="B",service_type="network",status_class="2xx"} 4.0'
        in (scrape)
    )


def test_another_projects_port_is_a_404_as_the_service_says_it(expanded):
    a, b, neutron = expanded
    neutron.ports["x"] = {"id": "x", "project_id": "A.p2"}
    r = call(a, "p1", "GET", "B/network/v2.0/ports/x")
    assert r.status_code == 404
    assert r.json() == {"NeutronError": {"message": "Port x not found"}}
    r = call(a, "p1", "GET", "B/network/v2.0/quotas")
    assert r.status_code == 403 and "admin only" in r.text


def test_refusals_say_why_and_nothing_reaches_the_peer(expanded):
    a, b, neutron = expanded
    cases = [
        ("p2", "GET", "B/network/v2.0/ports", None, 403, "has no expansion into 'B'"),
        ("p1", "GET", "C/network/v2.0/ports", None, 403, "no agreement with a peer named 'C'"),
        ("p1", "GET", "B/image/v2/images", None, 403, "'image' is not allowed"),
        ("p1", "GET", "B/identity/v3/users", None, 403, "'identity' is not allowed"),
        ("p1", "GET", "B/Network/v2.0/ports", None, 422, "service_type"),
        # (a literal '..' is resolved by the test client itself: tests/unit/test_proxy_rules.py)
        ("p1", "GET", "B/network/v2.0/%2e%2e/%2e%2e/v3/users", None, 422, "path"),
        ("p1", "GET", "B/network/v2.0/%2e%2e/x", None, 422, "path"),
        ("p1", "GET", "B/network/http://198.51.100.1/x", None, 422, "path"),
        ("p1", "GET", "B/network/v2.0/ports%3Fx", None, 422, "path"),
        ("p1", "GET", "B/network/@evil/x", None, 422, "path"),
        ("p1", "HEAD", "B/network/v2.0/ports", None, 405, ""),
    ]
    for project, method, path, body, status, said in cases:
        r = call(a, project, method, path, body)
        assert r.status_code == status, (path, r.text)
        assert said in r.text, (path, r.text)
    r = call(a, "p1", "GET", "B/network/v2.0/ports", token="not-a-token-of-this-cloud")
    assert r.status_code == 401
    r = a.http.get("/v1/proxy/B/network/v2.0/ports")
    assert r.status_code == 401
    r = call(a, "p1", "GET", "B/network/v2.0/ports", headers={"Accept": "a\tb"})
    assert r.status_code == 422 and "accept" in r.text
    assert neutron.calls == []


def test_a_body_over_the_limit_is_a_413(expanded):
    a, b, neutron = expanded
    big = {"port": {"name": "x" * (a.ctx.cfg.proxy.max_body + 1)}}
    r = call(a, "p1", "POST", "B/network/v2.0/ports", big)
    assert r.status_code == 413 and "proxy.max_body" in r.text
    assert neutron.calls == []


def test_the_peers_own_agreement_decides_too(expanded):
    a, b, neutron = expanded
    r = b.admin("PATCH", "/v1/agreements/A", {"proxy_services": ["compute"]})
    assert r.status_code == 200, r.text
    assert r.json()["proxy_services"] == ["compute"]
    r = call(a, "p1", "GET", "B/network/v2.0/ports")
    assert r.status_code == 403
    assert r.json()["error"]["message"].startswith("peer B: service_type: 'network' is not")
    assert neutron.calls == []
    r = b.admin("PATCH", "/v1/agreements/A", {"proxy_services": ["Bad Type"]})
    assert r.status_code == 422 and "proxy_services" in r.text


def test_the_peers_agent_down_is_a_502_its_service_down_a_503(expanded, pair):
    a, b, neutron = expanded
    neutron.down = True
    r = call(a, "p1", "GET", "B/network/v2.0/ports")
    assert r.status_code == 503
    assert r.json()["error"]["message"] == (
        "peer B: the network service is unreachable (ConnectError)"
    )
    from tests.functional.federation_harness import Router

    router: Router = a.ctx.federation.transport  # type: ignore[union-attr,assignment]
    router.down.add(b.ip)
    r = call(a, "p1", "GET", "B/network/v2.0/ports")
    assert r.status_code == 502
    assert r.json()["error"]["message"] == "peer B: its agent is unreachable"


def test_a_bad_answer_of_the_peer_is_a_502(expanded):
    a, b, neutron = expanded
    for bad in (
        Answer(700, (), b""),
        Answer(200, (("content-type", "text/plain\r\nSet-Cookie: x=1"),), b""),
        Answer(200, (), b"x" * (a.ctx.cfg.proxy.max_answer + 1)),
    ):
        neutron.answer = bad
        r = call(a, "p1", "GET", "B/network/v2.0/ports")
        assert r.status_code == 502, r.text
        assert "set-cookie" not in r.headers


def test_calls_are_rate_limited_per_project(expanded):
    a, b, neutron = expanded
    a.ctx.cfg.proxy.burst, a.ctx.cfg.proxy.rate = 3, 0.01
    statuses = [call(a, "p1", "GET", "B/network/v2.0/ports").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    # another project's calls are counted apart (p2 is refused for its own reason)
    assert call(a, "p2", "GET", "B/network/v2.0/ports").status_code == 403


def test_a_deleted_expansion_ends_the_projects_access_at_once(expanded):
    a, b, neutron = expanded
    assert call(a, "p1", "GET", "B/network/v2.0/ports").status_code == 200  # decision kept
    uid = a.user("p1", "GET", "/v1/expansions").json()[0]["id"]
    assert a.user("p1", "DELETE", f"/v1/expansions/{uid}").status_code == 202
    r = call(a, "p1", "GET", "B/network/v2.0/ports")
    assert r.status_code == 403 and "has no expansion into 'B'" in r.text


# -- answers stream: through both agents as they come, each piece verified -------------------


def streaming(a, b, tamper=None):
    """A user's client to A and A's calls to B over transports that pass answers on as they
    come (the test client would collect them whole)."""
    from tests.functional.streaming import ThreadedASGI

    to_b = ThreadedASGI(b.http.app, tamper)
    router = a.ctx.federation.transport
    whole = router.handle_request

    def handle(request):
        if request.url.host == b.ip:
            return to_b.handle_request(request)
        return whole(request)

    router.handle_request = handle
    user = httpx.Client(transport=ThreadedASGI(a.http.app), base_url="http://a.test")
    return user, to_b


def listing(first_read: threading.Event, done: threading.Event, pieces: int = 64):
    """A large listing whose service waits, after its first bytes, until the user read them."""

    def body():
        yield b'{"ports": ["' + b"a" * 1000
        assert first_read.wait(20), "the user never got the first bytes"
        for _ in range(pieces):
            yield b"p" * 64 * 1024
        yield b'"]}'
        done.set()

    return Answer(200, (("content-type", "application/json"),), rest=body())


def test_a_large_answer_streams_through_both_agents(expanded):
    a, b, neutron = expanded
    first_read, done = threading.Event(), threading.Event()
    neutron.answer = listing(first_read, done, pieces=192)  # 12 MB
    for agent in (a, b):
        agent.ctx.cfg.proxy.max_answer = 16 * 1024 * 1024
    user, to_b = streaming(a, b)
    tracemalloc.start()
    try:
        headers = {"X-Auth-Token": a.tokens["p1"]}
        with user.stream("GET", "/v1/proxy/B/network/v2.0/ports", headers=headers) as r:
            assert r.status_code == 200
            assert r.headers["content-type"] == "application/json"
            pieces = r.iter_raw()
            first = next(pieces)
            assert first.startswith(b'{"ports": ["a')
            assert not done.is_set()  # B's service has not finished: the user has bytes
            first_read.set()
            sizes = [len(first)] + [len(p) for p in pieces]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    total = 12 + 1000 + 192 * 64 * 1024 + 3
    assert done.is_set() and sum(sizes) == total
    # no hop held the answer: nothing the user got nor any frame B sent is over a chunk, and
    # the process (both agents, the service, the transports' queues of 4 pieces each) never
    # held more than a few chunks of this 12 MB answer at once
    assert max(sizes) <= frames.CHUNK
    assert max(to_b.pieces) <= frames.CHUNK + 5 + 32
    assert peak < 2 * 1024 * 1024, peak


def test_a_forged_piece_ends_the_users_answer_with_an_error(expanded, caplog):
    a, b, neutron = expanded
    first_read, done = threading.Event(), threading.Event()
    first_read.set()
    neutron.answer = listing(first_read, done, pieces=8)

    def forge(offset: int, piece: bytes) -> bytes:
        at = 200_000 - offset  # a byte of a DATA frame well after the first ones
        if 0 <= at < len(piece):
            return piece[:at] + bytes([piece[at] ^ 1]) + piece[at + 1 :]
        return piece

    user, _ = streaming(a, b, forge)
    got = bytearray()
    headers = {"X-Auth-Token": a.tokens["p1"]}
    with (
        caplog.at_level(logging.INFO, logger="intercloud.proxy"),
        user.stream("GET", "/v1/proxy/B/network/v2.0/ports", headers=headers) as r,
    ):
        assert r.status_code == 200  # sent once the signed head verified
        with pytest.raises(httpx.RemoteProtocolError):
            for piece in r.iter_raw():
                got += piece
    assert 0 < len(got) < 200_000  # nothing of the forged frame reached the user
    lines = [x.getMessage() for x in caplog.records if "answer broke" in x.getMessage()]
    assert len(lines) == 1 and "bad frame signature" in lines[0], lines
    scrape = a.admin("GET", "/metrics").text
    assert 'peer="B",service_type="network",status_class="5xx"} 1.0' in scrape


def test_a_stream_cut_by_the_service_is_an_error_for_the_user(expanded):
    a, b, neutron = expanded

    def body():
        yield b"x" * 100_000
        raise CloudError("the network service failed mid-answer (ReadError)")

    neutron.answer = Answer(200, (("content-type", "application/json"),), rest=body())
    user, _ = streaming(a, b)
    headers = {"X-Auth-Token": a.tokens["p1"]}
    with user.stream("GET", "/v1/proxy/B/network/v2.0/ports", headers=headers) as r:
        assert r.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            r.read()
