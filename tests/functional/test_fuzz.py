"""Fuzzing the whole API with schemathesis against its own /openapi.json (issue 13): an
in-process agent A (fake drivers, SQLite) peered with B, called with the admin token, a
project's token and B's signed federation headers, as each operation declares. Checked for
every answer: no server error, status code, content type and body as the document says,
and, for every 4xx, that no row of the database changed."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any
from urllib.parse import unquote

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi import checks as openapi_checks
from sqlalchemy import select

from intercloud.api.openapi import FEDERATION_HEADERS
from intercloud.federation import signing
from intercloud.store import models as m
from tests.functional.federation_harness import Router, make_agent, peer

MAX_EXAMPLES = 30  # per operation and token
BUDGET_SECONDS = 90.0  # for the whole run: past it, the remaining examples are not sent
REPLICA = "0b9d3f7e-1111-4222-8333-444455556666"  # one B makes on A during the run
OTHER = "0b9d3f7e-0000-4000-8000-000000000000"
NOT_STATE = {"federation_nonces"}  # a signed call records its nonce first, by design

CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.negative_data_rejection,
]
# bearer operations: schemathesis also sends each without and with a wrong token (federation
# ones are probed in the test itself: the signature is made below schemathesis)
BEARER_CHECKS = [*CHECKS, openapi_checks.ignored_auth]


class Signed(requests.auth.AuthBase):
    """B's federation signature over the request exactly as sent (path, query, body), in place
    of the four headers schemathesis generated; a request it sent without one of them (a
    negative case) goes as it is."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if not all(h in r.headers for h in FEDERATION_HEADERS.values()):
            return r
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        # signed as the agent checks it: the decoded path (request.url.path), the raw query
        path, _, query = (r.path_url or "/").partition("?")
        target = unquote(path) + (f"?{query}" if query else "")
        r.headers.update(signing.sign("B", "A", self.key, r.method or "GET", target, body))
        return r


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    router = Router()
    a = make_agent(tmp, router, "A", 1)
    b = make_agent(tmp, router, "B", 2)
    peer(a, b)
    with b.ctx.store.session() as s:
        key = s.scalar(select(m.Peer.key).where(m.Peer.name == "A"))
    r = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]})
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    a.reconcile(2)
    yield a, key, uid
    statuses = Counter()
    for (_method, _path, status), n in Budget.seen.items():
        statuses[status] += n
    print(f"fuzz: {Budget.calls} calls ({Budget.skipped} past the budget), answers "
          f"{dict(sorted(statuses.items()))}, {len(Budget.probed)} federation operations "
          "probed unsigned")  # fmt: skip
    for agent in (a, b):
        agent.ctx.store.dispose()


def examples(uid: str) -> dict[tuple[str, str], tuple[dict[str, str], dict | None]]:
    """Valid calls, one per operation: (path parameters, body). The document's loose schemas
    (names and addresses are plain strings there) would otherwise give nearly only 422s;
    from these the fuzzer reaches the handlers' own checks and the store."""
    key, psk = "k" * 32, "p" * 32
    return {
        ("post", "/v1/peers"): ({}, {"name": "C", "federation_url": "http://198.18.3.2:8700",
                                     "underlay_endpoint": "198.18.3.2", "key": key}),
        ("patch", "/v1/peers/{name}"): ({"name": "B"}, {"federation_url": "http://198.18.2.2:8700"}),
        ("get", "/v1/peers/{name}"): ({"name": "B"}, None),
        ("delete", "/v1/peers/{name}"): ({"name": "C"}, None),
        ("post", "/v1/links"): ({}, {"peer": "C", "local_endpoint": "198.18.1.2", "psk": psk}),
        ("get", "/v1/links/{peer}"): ({"peer": "B"}, None),
        ("patch", "/v1/links/{peer}"): ({"peer": "B"}, {"mtu": 1400}),
        ("delete", "/v1/links/{peer}"): ({"peer": "C"}, None),
        ("post", "/v1/agreements"): ({}, {"peer": "C", "projects": ["p1"],
                                          "peer_projects": ["p1"]}),
        ("get", "/v1/agreements/{peer}"): ({"peer": "B"}, None),
        ("patch", "/v1/agreements/{peer}"): ({"peer": "B"}, {"max_expansions_per_project": 5}),
        ("delete", "/v1/agreements/{peer}"): ({"peer": "C"}, None),
        ("post", "/v1/ike-policies"): ({}, {"name": "ike1", "lifetime": 3600}),
        ("get", "/v1/ike-policies/{name}"): ({"name": "ike1"}, None),
        ("delete", "/v1/ike-policies/{name}"): ({"name": "ike1"}, None),
        ("post", "/v1/ipsec-policies"): ({}, {"name": "esp1", "mode": "tunnel"}),
        ("get", "/v1/ipsec-policies/{name}"): ({"name": "esp1"}, None),
        ("delete", "/v1/ipsec-policies/{name}"): ({"name": "esp1"}, None),
        ("post", "/v1/expansions"): ({}, {"network": "net1", "peers": ["B"], "rate_mbit": 50.0}),
        ("get", "/v1/expansions/{uid}"): ({"uid": uid}, None),
        ("patch", "/v1/expansions/{uid}"): ({"uid": uid}, {"rate_mbit": 100.0}),
        ("delete", "/v1/expansions/{uid}"): ({"uid": "0" * 32}, None),
        ("put", "/v1/federation/replicas/{uid}"): ({"uid": REPLICA}, {
            "project": "p1", "network": "n1", "cidr": "10.20.0.0/24", "members": ["A", "B"]}),
        ("get", "/v1/federation/replicas/{uid}"): ({"uid": REPLICA}, None),
        ("put", "/v1/federation/replicas/{uid}/vni"): ({"uid": uid}, {"vni": None, "exclude": []}),
        ("delete", "/v1/federation/replicas/{uid}"): ({"uid": OTHER}, None),
        ("put", "/v1/federation/adjacencies/{uid}"): ({"uid": uid}, {"origin": "A", "exclude": []}),
        ("put", "/v1/federation/expansions/{uid}/direct"): ({"uid": uid}, {"direct": ["A"]}),
        ("put", "/v1/federation/expansions/{uid}/ports"): (
            {"uid": uid}, {"ports": [["aa:bb:cc:dd:ee:01", "10.10.0.5"]]}),
        ("put", "/v1/federation/replicas/{uid}/relays"): ({"uid": REPLICA}, {"relays": []}),
        ("post", "/v1/federation/replicas/{uid}/flush"): ({"uid": REPLICA}, None),
    }  # fmt: skip


@pytest.fixture(scope="module")
def api_schema(fuzzed):
    a, _, uid = fuzzed
    doc = a.http.get("/openapi.json").json()
    for (method, path), (params, body) in examples(uid).items():
        operation = doc["paths"][path][method]
        for param in operation.get("parameters", []):
            if param["in"] == "path" and param["name"] in params:
                param["example"] = params[param["name"]]
        if body is not None:
            content = operation["requestBody"]["content"]["application/json"]
            content["example"] = body
    loaded = schemathesis.openapi.from_dict(doc)
    loaded.app = a.http.app  # called in process, over ASGI
    loaded.location = "/openapi.json"
    return loaded


schema = schemathesis.pytest.from_fixture("api_schema")


def rows(agent) -> dict[str, list[tuple]]:
    with agent.ctx.store.session() as s:
        return {
            t.name: sorted(map(tuple, s.execute(select(t)).all()), key=repr)
            for t in m.Base.metadata.sorted_tables
            if t.name not in NOT_STATE
        }


class Budget:
    deadline: float | None = None
    calls = 0
    skipped = 0
    seen: Counter = Counter()
    probed: set[str] = set()


def credentials(case: Any, agent, key: str) -> dict[str, Any]:
    """What the operation declares it needs: bearer (the admin token for the admin API, p1's
    for the user API), or B's signature. Every fifth call uses the other bearer token."""
    security = case.operation.definition.raw.get("security", [])
    if not security:
        return {}
    if "peerSignature" in security[0]:
        return {"auth": Signed(key)}
    admin = "admin" in case.operation.definition.raw.get("tags", [])
    if Budget.calls % 5 == 0:
        admin = not admin
    token = agent.admin_token if admin else agent.tokens["p1"]
    return {"headers": {"Authorization": f"Bearer {token}"}}


def agreed(agent) -> None:
    """The agreement with B as the fixture made it: the admin calls fuzzed before may have
    emptied it, and every federation call would then stop at 403."""
    want = {"projects": ["p1", "p2"], "peer_projects": ["p1", "p2"]}
    have = agent.admin("GET", "/v1/agreements/B")
    if have.status_code != 200 or any(have.json().get(k) != v for k, v in want.items()):
        r = agent.admin("PATCH", "/v1/agreements/B", want)
        assert r.status_code == 200, r.text


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,
)
def test_fuzz_the_api(case, fuzzed):
    agent, key, _ = fuzzed
    now = time.monotonic()
    if Budget.deadline is None:
        Budget.deadline = now + BUDGET_SECONDS
    if now > Budget.deadline:
        Budget.skipped += 1
        return
    Budget.calls += 1
    kwargs = credentials(case, agent, key)
    if "auth" in kwargs:
        agreed(agent)
    before = rows(agent)
    response = case.call(**kwargs)
    Budget.seen[(case.method, case.path, response.status_code)] += 1
    signed = "auth" in kwargs
    checks = CHECKS if signed else BEARER_CHECKS
    case.validate_response(response, checks=checks, headers=kwargs.get("headers"))
    if signed and response.status_code < 300 and case.operation.label not in Budget.probed:
        Budget.probed.add(case.operation.label)
        for probe in ({}, {"auth": Signed("x" * 32)}):  # unsigned, and signed with another key
            unchanged = rows(agent)
            refused = case.call(**probe)
            assert refused.status_code == 401, (case.operation.label, probe, refused.text)
            assert rows(agent) == unchanged, case.operation.label
    if 400 <= response.status_code < 500:
        after = rows(agent)
        changed = {t for t in before if before[t] != after[t]}
        assert not changed, (
            f"{case.method} {case.formatted_path} answered {response.status_code} "
            f"but changed {sorted(changed)}: {response.text[:300]}"
        )
