"""Bad input on every API group: a clear 4xx naming the field, and no change anywhere."""

from __future__ import annotations

import json

import pytest

from intercloud.federation.signing import sign
from tests.functional.federation_harness import Router, make_agent, peer


@pytest.fixture
def pair(tmp_path):
    router = Router()
    a = make_agent(tmp_path, router, "A", 1)
    b = make_agent(tmp_path, router, "B", 2)
    peer(a, b, projects=("p1",))
    yield a, b
    for agent in (a, b):
        agent.ctx.store.dispose()


def snapshot(agent) -> dict:
    """Everything an agent holds: admin view, each project's view, the host."""
    return {
        "peers": agent.admin("GET", "/v1/peers").json(),
        "links": [dict(x, status=None) for x in agent.admin("GET", "/v1/links").json()],
        "agreements": agent.admin("GET", "/v1/agreements").json(),
        "replicas": agent.admin("GET", "/v1/replicas").json(),
        "p1": agent.user("p1", "GET", "/v1/expansions").json(),
        "p2": agent.user("p2", "GET", "/v1/expansions").json(),
        "host": agent.dataplane.observe().state.interface_names(),
    }


def error_of(resp, status: int, field: str | None = None) -> str:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["message"]
    if field is not None:
        assert err["field"] == field, err
        assert field.split(".")[0] in err["message"]
    return err["message"]


def raw(agent, method, path, content: bytes, token: str):
    return agent.http.request(
        method,
        path,
        content=content,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


ADMIN_CASES = [
    (
        "POST",
        "/v1/peers",
        {
            "name": "C",
            "federation_url": "ftp://x",
            "underlay_endpoint": "198.18.3.2",
            "key": "k" * 32,
        },
        422,
        "federation_url",
    ),
    (
        "POST",
        "/v1/peers",
        {
            "name": "C",
            "federation_url": "http://198.18.3.2:8700",
            "underlay_endpoint": "198.18.3.999",
            "key": "k" * 32,
        },
        422,
        "underlay_endpoint",
    ),
    (
        "POST",
        "/v1/peers",
        {
            "name": "C",
            "federation_url": "http://198.18.3.2:8700",
            "underlay_endpoint": "198.18.3.2",
            "key": "short",
        },
        422,
        "key",
    ),
    (
        "POST",
        "/v1/peers",
        {
            "name": "B",
            "federation_url": "http://198.18.3.2:8700",
            "underlay_endpoint": "198.18.3.2",
            "key": "k" * 32,
        },
        409,
        "name",
    ),
    (
        "POST",
        "/v1/peers",
        {
            "name": "bad name!",
            "federation_url": "http://198.18.3.2:8700",
            "underlay_endpoint": "198.18.3.2",
            "key": "k" * 32,
        },
        422,
        "name",
    ),
    ("POST", "/v1/links", {"peer": "Z", "local_endpoint": "198.18.1.2"}, 404, "peer"),
    (
        "POST",
        "/v1/links",
        {"peer": "B", "local_endpoint": "198.18.1.2", "psk": "s" * 20},
        409,
        "peer",
    ),
    ("POST", "/v1/links", {"peer": "B", "local_endpoint": "nope"}, 422, "local_endpoint"),
    ("PATCH", "/v1/links/B", {"mtu": 100}, 422, "mtu"),
    ("PATCH", "/v1/links/B", {"mtu": "big"}, 422, "mtu"),
    ("POST", "/v1/agreements", {"peer": "Z", "projects": ["p1"]}, 404, "peer"),
    ("POST", "/v1/agreements", {"peer": "B", "projects": "p1"}, 422, "projects"),
    (
        "PATCH",
        "/v1/agreements/B",
        {"max_expansions_per_project": -1},
        422,
        "max_expansions_per_project",
    ),
    ("DELETE", "/v1/peers/B", None, 409, "name"),
    ("GET", "/v1/peers/Z", None, 404, "name"),
]


@pytest.mark.parametrize("method,path,body,status,field", ADMIN_CASES)
def test_admin_bad_input(pair, method, path, body, status, field):
    a, b = pair
    before = snapshot(a)
    error_of(a.admin(method, path, body), status, field)
    assert snapshot(a) == before


def test_link_with_unsupported_tunnel_type_names_the_field(pair):
    a, _ = pair
    a.admin("DELETE", "/v1/agreements/B")
    assert a.admin("DELETE", "/v1/links/B").status_code == 204
    before = snapshot(a)
    msg = error_of(
        a.admin(
            "POST",
            "/v1/links",
            {"peer": "B", "local_endpoint": "198.18.1.2", "tunnel_type": "geneve"},
        ),
        422,
        "tunnel_type",
    )
    assert "not supported" in msg
    assert snapshot(a) == before


@pytest.mark.parametrize("token_kind", ["admin", "p1"])
def test_malformed_json_is_400(pair, token_kind):
    a, _ = pair
    before = snapshot(a)
    if token_kind == "admin":
        r = raw(a, "POST", "/v1/peers", b'{"name": "C",', a.admin_token)
    else:
        r = raw(a, "POST", "/v1/expansions", b'{"network": ', a.tokens["p1"])
    assert error_of(r, 400, "body") == "malformed JSON body"
    assert snapshot(a) == before


def test_unknown_field_is_refused(pair):
    a, _ = pair
    r = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"], "x": 1})
    error_of(r, 422, "x")


USER_CASES = [
    ({"network": "net1", "peers": ["Z"]}, 404, "peers"),  # unknown peer
    ({"network": "net1", "peers": []}, 422, "peers"),
    ({"network": "net1", "peers": ["B"], "vni": 0}, 422, "vni"),  # invalid VNI
    ({"network": "net1", "peers": ["B"], "vni": 2**24}, 422, "vni"),
    ({"network": "net2", "peers": ["B"]}, 404, "network"),  # another project's network
    ({"network": "nope", "peers": ["B"]}, 404, "network"),
]


@pytest.mark.parametrize("body,status,field", USER_CASES)
def test_user_bad_input(pair, body, status, field):
    a, _ = pair
    before = snapshot(a)
    error_of(a.user("p1", "POST", "/v1/expansions", body), status, field)
    assert snapshot(a) == before


def test_peer_outside_agreement_is_invisible_to_the_project(pair):
    a, _ = pair  # the agreement lists p1 only
    before = snapshot(a)
    error_of(
        a.user("p2", "POST", "/v1/expansions", {"network": "net2", "peers": ["B"]}), 404, "peers"
    )
    assert snapshot(a) == before


def test_another_projects_expansion_is_404_not_403(pair):
    a, b = pair
    uid = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]}).json()["id"]
    before = snapshot(a)
    error_of(a.user("p2", "GET", f"/v1/expansions/{uid}"), 404, "id")
    error_of(a.user("p2", "DELETE", f"/v1/expansions/{uid}"), 404, "id")
    assert snapshot(a) == before


def test_vni_in_use_is_409(pair):
    a, b = pair
    a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"], "vni": 4242})
    for _ in range(3):
        a.reconcile()
        b.reconcile()
    a.admin("PATCH", "/v1/agreements/B", {"projects": ["p1", "p2"]})
    before = snapshot(a)
    error_of(
        a.user("p2", "POST", "/v1/expansions", {"network": "net2", "peers": ["B"], "vni": 4242}),
        409,
        "vni",
    )
    assert snapshot(a) == before


@pytest.mark.parametrize("token,status", [(None, 401), ("wrong-token-123456", 401), ("p1", 403)])
def test_admin_api_needs_the_admin_token(pair, token, status):
    a, _ = pair
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {a.tokens.get(token, token)}"
    r = a.http.post(
        "/v1/peers",
        json={
            "name": "C",
            "federation_url": "http://198.18.3.2:1",
            "underlay_endpoint": "198.18.3.2",
            "key": "k" * 32,
        },
        headers=headers,
    )
    error_of(r, status)
    assert [p["name"] for p in a.admin("GET", "/v1/peers").json()] == ["B"]


def test_user_api_refuses_the_admin_token(pair):
    a, _ = pair
    r = a.http.get("/v1/expansions", headers={"Authorization": f"Bearer {a.admin_token}"})
    error_of(r, 403)


# -- federation ----------------------------------------------------------------------------

REPLICA = "/v1/federation/replicas/0b6f3a52-0000-4000-8000-000000000001"
BODY = {"project": "p1", "network": "net1", "cidr": "10.10.0.0/24"}


def fed(agent, method, path, body, *, sender="A", key=None, headers=None, payload=None):
    content = json.dumps(body).encode() if payload is None else payload
    h = sign(sender, agent.name, key or agent_key(agent, sender), method, path, content)
    h.update(headers or {})
    h["Content-Type"] = "application/json"
    return agent.http.request(method, path, content=content, headers=h)


def agent_key(agent, peer_name):
    from sqlalchemy import select

    from intercloud.store import models as m

    with agent.ctx.store.session() as s:
        row = s.scalar(select(m.Peer).where(m.Peer.name == peer_name))
        return row.key if row else "x" * 32


def test_federation_signed_call_works(pair):
    _, b = pair
    assert fed(b, "PUT", REPLICA, BODY).status_code == 201


@pytest.mark.parametrize("case", ["unsigned", "wrong_key", "unknown_peer", "tampered", "stale"])
def test_federation_refuses_unauthenticated_calls(pair, case):
    _, b = pair
    before = snapshot(b)
    if case == "unsigned":
        r = b.http.put(REPLICA, json=BODY)
    elif case == "wrong_key":
        r = fed(b, "PUT", REPLICA, BODY, key="w" * 32)
    elif case == "unknown_peer":
        r = fed(b, "PUT", REPLICA, BODY, sender="Mallory", key="m" * 32)
    elif case == "tampered":
        h = sign("A", "B", agent_key(b, "A"), "PUT", REPLICA, json.dumps(BODY).encode())
        r = b.http.put(
            REPLICA, content=json.dumps(dict(BODY, cidr="10.99.0.0/24")).encode(), headers=h
        )
    else:
        content = json.dumps(BODY).encode()
        h = sign("A", "B", agent_key(b, "A"), "PUT", REPLICA, content, now=1_000_000)
        r = b.http.put(REPLICA, content=content, headers=h)
    error_of(r, 401)
    assert snapshot(b) == before


def test_federation_replay_is_refused(pair):
    _, b = pair
    content = json.dumps(BODY).encode()
    h = sign("A", "B", agent_key(b, "A"), "PUT", REPLICA, content)
    h["Content-Type"] = "application/json"
    assert b.http.put(REPLICA, content=content, headers=h).status_code == 201
    error_of(b.http.put(REPLICA, content=content, headers=h), 401)


def test_federation_bad_input(pair):
    _, b = pair
    before = snapshot(b)
    error_of(fed(b, "PUT", REPLICA, dict(BODY, cidr="10.10.0.0/33")), 422, "cidr")
    error_of(fed(b, "PUT", REPLICA, None, payload=b'{"project":'), 400, "body")
    error_of(fed(b, "PUT", REPLICA, dict(BODY, project="p2")), 403, "project")
    error_of(fed(b, "PUT", REPLICA + "/vni", {"vni": 5}), 404, "id")
    error_of(fed(b, "GET", REPLICA, None, payload=b""), 404, "id")
    assert snapshot(b) == before
    assert fed(b, "PUT", REPLICA, BODY).status_code == 201
    error_of(fed(b, "PUT", REPLICA + "/vni", {"vni": -3}), 422, "vni")


def test_a_peer_cannot_touch_another_peers_replica(pair, tmp_path):
    _, b = pair
    assert fed(b, "PUT", REPLICA, BODY).status_code == 201
    # a second peer C of B, with its own key
    key = "c" * 32
    b.admin(
        "POST",
        "/v1/peers",
        {
            "name": "C",
            "federation_url": "http://198.18.3.2:8700",
            "underlay_endpoint": "198.18.3.2",
            "key": key,
        },
    )
    error_of(fed(b, "GET", REPLICA, None, sender="C", key=key, payload=b""), 404, "id")
    error_of(fed(b, "DELETE", REPLICA, None, sender="C", key=key, payload=b""), 404, "id")
    assert len(b.admin("GET", "/v1/replicas").json()) == 1
