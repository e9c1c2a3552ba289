"""`GET /v1/links/{peer}/diagnosis` between two in-process agents: the real health call (its
`time` compared with ours), the fake IPsec driver's states, the admin token, and a 404 naming an
unknown peer."""

from __future__ import annotations

import pytest

from intercloud.domain.diagnosis import Route
from tests.functional.federation_harness import Router, make_agent, peer


class Host:
    reads_ports = False  # the fake data plane has no VXLAN devices to read

    def route(self, address: str) -> Route:
        return Route(True, f"route to {address}")

    def flood(self, port: str) -> tuple[str, ...] | None:
        raise AssertionError("not asked when reads_ports is False")


@pytest.fixture
def pair(tmp_path):
    router = Router()
    a = make_agent(tmp_path, router, "A", 1)
    b = make_agent(tmp_path, router, "B", 2)
    peer(a, b)
    assert a.ctx.diagnoser is not None
    a.ctx.diagnoser.peers = a.ctx.reconciler.federation  # the in-memory federation
    a.ctx.diagnoser.host = Host()
    a.reconcile(2)
    b.reconcile(2)
    yield a, b, router
    for agent in (a, b):
        agent.ctx.store.dispose()


def layers(answer: dict) -> dict[str, dict]:
    return {lay["layer"]: lay for lay in answer["layers"]}


def test_walk_of_a_fine_link_then_of_a_stopped_peer(pair):
    a, b, router = pair
    r = a.admin("GET", "/v1/links/B/diagnosis")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["peer"] == "B" and out["broken"] is None, out
    got = layers(out)
    assert got["api"]["state"] == "ok" and got["ipsec"]["state"] == "ok"
    clock = got["clock"]["detail"]
    assert got["clock"]["state"] == "ok" and ("ahead of ours" in clock or "behind ours" in clock)
    assert got["fdb"]["state"] == "skipped"
    router.down.add(b.ip)
    out = a.admin("GET", "/v1/diagnosis").json()
    assert out["broken"] == ["B"] and out["links"][0]["broken"] == "api"


def test_wrong_psk_is_ipsec(pair):
    a, _, _ = pair
    a.ctx.ipsec.fail_auth("link-B")
    out = a.admin("GET", "/v1/links/B/diagnosis").json()
    assert out["broken"] == "ipsec" and "pre-shared keys differ" in out["advice"], out


def test_admin_only_and_unknown_peer_404(pair):
    a, _, _ = pair
    assert a.http.get("/v1/links/B/diagnosis").status_code == 401
    assert a.user("p1", "GET", "/v1/links/B/diagnosis").status_code == 403
    r = a.admin("GET", "/v1/links/Z/diagnosis")
    assert r.status_code == 404 and "'Z'" in r.json()["error"]["message"]
