"""The OpenAPI document (api/openapi.py): security schemes, and per operation the error answers
it can give, with the error body the agent really sends."""

from __future__ import annotations

import jsonschema_rs
import pytest

from intercloud.federation import signing
from tests.functional.federation_harness import Router, make_agent

ERRORS = {"401", "403", "404", "409", "413", "422"}


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    a = make_agent(tmp_path_factory.mktemp("openapi"), Router(), "A", 1)
    yield a
    a.ctx.store.dispose()


@pytest.fixture(scope="module")
def doc(agent):
    return agent.http.get("/openapi.json").json()


def operations(doc):
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            yield path, method, op


def test_security_schemes_are_declared(doc):
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerToken"] == {**schemes["bearerToken"], "type": "http", "scheme": "bearer"}
    assert schemes["keystoneToken"]["name"] == "X-Auth-Token"
    headers = {s["name"] for s in schemes.values() if s["type"] == "apiKey" and s["in"] == "header"}
    assert {
        signing.HEADER_PEER,
        signing.HEADER_TIMESTAMP,
        signing.HEADER_NONCE,
        signing.HEADER_SIGNATURE,
    } <= headers


def test_every_operation_says_who_may_call_it_and_how_it_fails(doc):
    seen = set()
    for path, method, op in operations(doc):
        tag = op["tags"][0]
        seen.add(tag)
        if tag == "federation":  # all four signature headers together
            assert op["security"] == [
                {"peerName": [], "peerTimestamp": [], "peerNonce": [], "peerSignature": []}
            ], (method, path)
        else:
            assert op["security"] == [{"bearerToken": []}, {"keystoneToken": []}], (method, path)
        assert set(op["responses"]) >= ERRORS, (method, path)
        for status in ERRORS:
            body = op["responses"][status]["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/Error"}
    assert seen == {"admin", "user", "federation"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]  # never sent


@pytest.mark.parametrize(
    "method, path, kwargs, status",
    [
        ("POST", "/v1/peers", {"json": {"name": 1}}, 422),
        ("POST", "/v1/peers", {"content": b"{"}, 400),
        ("GET", "/v1/peers/nope", {}, 404),
        ("POST", "/v1/peers", {"content": b"x" * (2 * 2**20)}, 413),
        ("GET", "/v1/status", {"token": ""}, 401),
        ("GET", "/v1/status", {"token": "p1"}, 403),
        ("GET", "/v1/federation/health", {"token": ""}, 401),
    ],
)
def test_error_answers_match_the_declared_body(agent, doc, method, path, kwargs, status):
    token = kwargs.pop("token", "admin")
    headers = {"Content-Type": "application/json"}
    if token:
        value = agent.admin_token if token == "admin" else agent.tokens[token]
        headers["Authorization"] = f"Bearer {value}"
    r = agent.http.request(method, path, headers=headers, **kwargs)
    assert r.status_code == status, r.text
    schema = doc["components"]["schemas"]["Error"]
    jsonschema_rs.validate(schema, r.json())
