"""Prometheus metrics (metrics.py, service/gauges.py): GET /metrics for the admin token only,
one registry per agent, the families a pass, a federation call and an API request leave, and
the plain listener of `agent.metrics_listen`."""

from __future__ import annotations

import socket
from dataclasses import replace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from intercloud import agent as agent_mod
from intercloud.metrics import CONTENT_TYPE
from tests.functional.federation_harness import Router, make_agent, peer

FAMILIES = {  # name (without _total) -> (type, labels of its samples)
    "intercloud_link_up": ("gauge", {"peer"}),
    "intercloud_link_state": ("gauge", {"peer", "state"}),
    "intercloud_ipsec_ike_sa_state": ("gauge", {"peer", "lane", "state"}),
    "intercloud_ipsec_child_sas": ("gauge", {"peer", "lane", "state"}),
    "intercloud_ipsec_bytes": ("counter", {"peer", "lane", "direction"}),
    "intercloud_ipsec_packets": ("counter", {"peer", "lane", "direction"}),
    "intercloud_peer_rtt_seconds": ("gauge", {"peer"}),
    "intercloud_peer_health_checks": ("counter", {"peer", "result"}),
    "intercloud_expansion_peers": ("gauge", {"peer", "state"}),
    "intercloud_reconcile_pass_duration_seconds": ("histogram", set()),
    "intercloud_reconcile_changes": ("counter", set()),
    "intercloud_reconcile_errors": ("counter", set()),
    "intercloud_federation_call_duration_seconds": ("histogram", {"peer", "call"}),
    "intercloud_api_request_duration_seconds": ("histogram", {"route", "method", "status"}),
}


@pytest.fixture
def pair(tmp_path):
    router = Router()
    a = make_agent(tmp_path, router, "A", 1)
    b = make_agent(tmp_path, router, "B", 2)
    peer(a, b)
    r = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]})
    assert r.status_code == 201, r.text
    for _ in range(3):
        a.reconcile()
        b.reconcile()
    yield a, b, router, r.json()["id"]
    for agent in (a, b):
        agent.ctx.store.dispose()


def scrape(agent) -> dict:
    r = agent.http.get("/metrics", headers={"Authorization": f"Bearer {agent.admin_token}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == CONTENT_TYPE
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def value(families: dict, name: str, sample: str | None = None, **labels: str) -> float:
    family = name.removesuffix("_total")
    for s in families[family].samples:
        if s.name == (sample or name) and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise KeyError((name, labels))


def test_metrics_need_the_admin_token(pair):
    a, *_ = pair
    assert a.http.get("/metrics").status_code == 401
    bad = a.http.get("/metrics", headers={"Authorization": "Bearer " + "x" * 32})
    assert bad.status_code == 401
    user = a.http.get("/metrics", headers={"Authorization": f"Bearer {a.tokens['p1']}"})
    assert user.status_code == 403


def test_families_after_a_pass_have_their_types_and_bounded_labels(pair):
    a, _, _, uid = pair
    a.admin("GET", f"/v1/expansions/{uid}")  # an admin may not read it: any status will do
    a.user("p1", "GET", f"/v1/expansions/{uid}")
    families = scrape(a)
    for name, (kind, labels) in FAMILIES.items():
        assert families[name].type == kind, name
        samples = families[name].samples
        assert samples, name
        for s in samples:
            assert set(s.labels) - {"le"} == labels, (name, s)
            assert uid not in s.labels.values(), (name, s)  # no expansion's uid as a label
    assert value(families, "intercloud_link_up", peer="B") == 1.0
    assert value(families, "intercloud_link_state", peer="B", state="up") == 1.0
    assert value(families, "intercloud_link_state", peer="B", state="down") == 0.0
    assert value(families, "intercloud_ipsec_ike_sa_state", peer="B", lane="0") == 1.0
    assert value(families, "intercloud_expansion_peers", peer="B", state="active") == 1.0
    assert value(families, "intercloud_ipsec_bytes_total", peer="B", direction="in") >= 0
    assert value(families, "intercloud_peer_health_checks_total", peer="B", result="ok") >= 1
    assert value(families, "intercloud_reconcile_changes_total") > 0
    passes = "intercloud_reconcile_pass_duration_seconds_count"
    assert value(families, "intercloud_reconcile_pass_duration_seconds", passes) == 3
    route = "/v1/expansions/{uid}"
    assert (
        value(
            families,
            "intercloud_api_request_duration_seconds",
            "intercloud_api_request_duration_seconds_count",
            route=route,
            method="GET",
            status="200",
        )
        == 1.0
    )
    routes = {
        s.labels["route"] for s in families["intercloud_api_request_duration_seconds"].samples
    }
    assert not any(uid in r for r in routes), routes  # templates, never raw paths
    replicas = scrape(pair[1])["intercloud_replicas"]
    assert [(s.labels, s.value) for s in replicas.samples] == [
        ({"peer": "A", "state": "active"}, 1.0)
    ]


def test_a_link_going_down_flips_link_up_and_counts_failed_checks(pair):
    a, b, router, _ = pair
    calls = "intercloud_federation_call_duration_seconds_count"
    before = scrape(a)
    n = value(before, "intercloud_federation_call_duration_seconds", calls, peer="B", call="health")
    router.down.add(b.ip)
    a.ctx.reconciler.memory.healthy_at.clear()  # no answer a moment ago: ask again now
    result = a.ctx.reconciler.reconcile_once()
    assert result.links_down
    after = scrape(a)
    assert value(after, "intercloud_link_up", peer="B") == 0.0
    assert value(after, "intercloud_link_state", peer="B", state="down") == 1.0
    with pytest.raises(KeyError):  # no round trip while the peer does not answer
        value(after, "intercloud_peer_rtt_seconds", peer="B")
    checks = "intercloud_peer_health_checks_total"
    assert value(after, checks, peer="B", result="failed") == 1.0
    errors = "intercloud_federation_call_errors_total"
    assert value(after, errors, peer="B", call="health") == 1.0
    assert (
        value(after, "intercloud_federation_call_duration_seconds", calls, peer="B", call="health")
        == n + 1
    )
    router.down.discard(b.ip)
    a.reconcile()
    assert value(scrape(a), "intercloud_link_up", peer="B") == 1.0


def test_a_method_of_the_clients_making_is_no_label_of_its_own(pair):
    a, *_ = pair
    for method in ("FOO", "BAR"):
        a.http.request(method, "/v1/peers")
    count = "intercloud_api_request_duration_seconds_count"
    families = scrape(a)
    methods = {
        s.labels["method"] for s in families["intercloud_api_request_duration_seconds"].samples
    }
    assert methods <= {"GET", "POST", "OTHER"}, methods
    assert value(families, "intercloud_api_request_duration_seconds", count, method="OTHER") == 2


def test_each_agent_has_its_own_registry(pair):
    a, b, *_ = pair
    a.http.get("/metrics")  # refused: still a request A counts
    count = "intercloud_api_request_duration_seconds_count"
    status_401 = {"route": "/metrics", "method": "GET", "status": "401"}
    assert value(scrape(a), "intercloud_api_request_duration_seconds", count, **status_401) == 1
    with pytest.raises(KeyError):
        value(scrape(b), "intercloud_api_request_duration_seconds", count, **status_401)


def test_the_plain_listener_serves_the_same_registry_without_a_token(pair):
    a, *_ = pair
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = replace(a.ctx.cfg, agent=replace(a.ctx.cfg.agent, metrics_listen=f"127.0.0.1:{port}"))
    server = agent_mod._metrics_listener(cfg, a.ctx)
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    assert r.status_code == 200
    names = {f.name for f in text_string_to_metric_families(r.text)}
    assert {"intercloud_link_up", "intercloud_reconcile_pass_duration_seconds"} <= names


def test_a_failed_pass_counts_an_error(pair):
    a, *_ = pair
    errors = "intercloud_reconcile_errors_total"
    before = value(scrape(a), errors)
    a.dataplane.fail("observe")
    result = a.ctx.reconciler.reconcile_once()
    assert not result.settled
    assert value(scrape(a), errors) == before + 1
