"""Finding 6 of issue 13: request bodies are bounded before anything reads them
(api/limits.py). The memory side, on a real agent process, is in test_memory.py."""

from __future__ import annotations

import json

import pytest

from intercloud.api.limits import MAX_BODY
from tests.functional.federation_harness import Router, make_agent

LONGEST_IP = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"  # 45 characters
LONGEST_NAME = "n" * 63


def largest_legitimate_bodies() -> dict[str, dict]:
    """The biggest bodies the API takes, at their validators' limits (validation.MAX_PORTS
    ports, service/adjacencies.set_relays' 1,024 pairs, 256 members), all with the longest
    values."""
    ports = [["aa:bb:cc:dd:ee:ff", LONGEST_IP] for _ in range(4096)]
    members = [LONGEST_NAME] * 256
    return {
        "ports": {"ports": ports},
        "relays": {"relays": [[LONGEST_NAME, LONGEST_NAME]] * 1024},
        "replica": {
            "project": LONGEST_NAME,
            "network": LONGEST_NAME,
            "cidr": "ffff:ffff:ffff:ffff::/64",
            "members": members,
            "addressing": {
                "gateway": LONGEST_IP,
                "pools": [[LONGEST_IP, LONGEST_IP]] * 64,
                "ports": ports,
            },  # fmt: skip
        },
    }


def test_the_largest_legitimate_body_fits_with_room():
    for name, body in largest_legitimate_bodies().items():
        size = len(json.dumps(body).encode())  # with spaces: bigger than httpx's compact form
        assert size < MAX_BODY / 2, (name, size)


@pytest.fixture
def agent(tmp_path):
    a = make_agent(tmp_path, Router(), "A", 1)
    yield a
    a.ctx.store.dispose()


def too_large(resp) -> None:
    assert resp.status_code == 413, resp.text
    assert resp.json() == {
        "error": {
            "code": "too_large",
            "message": f"request body larger than {MAX_BODY} bytes",
            "field": "body",
        }
    }


@pytest.mark.parametrize("path", ["/v1/peers", "/v1/expansions", "/v1/federation/replicas/x"])
def test_content_length_over_the_limit_is_413_before_authentication(agent, path):
    body = b"x" * (MAX_BODY + 1)
    too_large(agent.http.post(path, content=body))  # no credentials at all
    too_large(agent.http.put(path, content=body, headers={"Authorization": "Bearer nope"}))


def test_chunked_body_over_the_limit_is_413(agent):
    sent = []

    def chunks():
        for _ in range(64):  # 4 MiB in 64 KiB pieces, no Content-Length
            sent.append(1)
            yield b"x" * 65536

    resp = agent.http.post(
        "/v1/peers",
        content=chunks(),
        headers={"Authorization": f"Bearer {agent.admin_token}"},
    )
    too_large(resp)


def test_bodies_within_the_limit_go_through(agent):
    big = largest_legitimate_bodies()["ports"]
    # unsigned: refused by authentication, which is after the limit
    r = agent.http.put("/v1/federation/expansions/x/ports", json=big)
    assert r.status_code == 401, r.text

    def chunks():
        yield b'{"name": "B", "federation_url": "http://198.18.2.2:8700", '
        yield b'"underlay_endpoint": "198.18.2.2", "key": "' + b"k" * 32 + b'"}'

    r = agent.http.post(
        "/v1/peers",
        content=chunks(),
        headers={
            "Authorization": f"Bearer {agent.admin_token}",
            "Content-Type": "application/json",
        },
    )
    assert r.status_code == 201, r.text  # a chunked body within the limit is handed on whole
    assert agent.admin("GET", "/v1/peers").json()[0]["name"] == "B"


def test_a_413_is_documented(agent):
    doc = agent.http.get("/openapi.json").json()
    assert "413" in doc["paths"]["/v1/peers"]["post"]["responses"]
