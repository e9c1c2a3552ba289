"""The topology page's data (GET /v1/topology) with three agents in one process: A peered with
B and C, B and C with each other; one network of A's expanded to both. The page itself
(GET /ui/topology) holds no data and needs no token; the JSON is the admin's only."""

from __future__ import annotations

import pytest

from tests.functional.federation_harness import Router, make_agent, peer


@pytest.fixture
def trio(tmp_path):
    router = Router()
    a, b, c = (make_agent(tmp_path, router, n, i) for i, n in enumerate("ABC", start=1))
    peer(a, b)
    peer(a, c)
    peer(b, c)
    r = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B", "C"]})
    assert r.status_code == 201, r.text
    for _ in range(4):
        for agent in (a, b, c):
            agent.reconcile()
    yield a, b, c, router, r.json()["id"]
    for agent in (a, b, c):
        agent.ctx.store.dispose()


def topology(agent) -> dict:
    r = agent.admin("GET", "/v1/topology")
    assert r.status_code == 200, r.text
    return r.json()


def test_the_origin_sees_its_clouds_links_and_paths(trio):
    a, _, _, _, uid = trio
    topo = topology(a)
    assert topo["cloud"] == "A"
    assert [(c["name"], c["here"]) for c in topo["clouds"]] == [
        ("A", True), ("B", False), ("C", False),
    ]  # fmt: skip
    links = {lk["peer"]: lk for lk in topo["links"]}
    assert set(links) == {"B", "C"}
    for name, lk in links.items():
        assert lk["between"] == ["A", name]
        assert lk["state"] == "up" and lk["enabled"] and lk["encrypted"], lk
        assert set(lk) >= {"reason", "rtt_ms", "bytes_in", "bytes_out", "ike_state"}
    (exp,) = topo["expansions"]
    assert exp["id"] == uid and exp["origin"] == "A" and exp["network"] == "net1"
    assert exp["members"] == ["A", "B", "C"] and exp["status"] == "active", exp
    paths = {"-".join(p["between"]): (p["state"], p["via"]) for p in exp["paths"]}
    assert paths == {"A-B": ("direct", []), "A-C": ("direct", []), "B-C": ("direct", [])}


def test_a_member_sees_the_network_it_hosts(trio):
    _, b, _, _, uid = trio
    topo = topology(b)
    assert [c["name"] for c in topo["clouds"]] == ["B", "A", "C"]
    (exp,) = topo["expansions"]
    assert exp["id"] == uid and exp["origin"] == "A" and exp["members"] == ["A", "B", "C"]
    assert {tuple(p["between"]) for p in exp["paths"]} == {("A", "B"), ("B", "C")}


def test_link_states_follow_the_links(trio):
    a, _, c, router, _ = trio
    r = a.admin("PATCH", "/v1/links/B", {"enabled": False})
    assert r.status_code == 200, r.text
    router.down.add(c.ip)  # C's agent stops answering
    a.ctx.reconciler.memory.healthy_at.clear()  # ask for health now, not in HEALTH_FRESH
    a.reconcile()
    links = {lk["peer"]: lk for lk in topology(a)["links"]}
    assert links["B"]["state"] == "disabled" and not links["B"]["enabled"]
    assert links["C"]["state"] == "down" and links["C"]["reason"], links["C"]
    (exp,) = topology(a)["expansions"]
    assert exp["status"] != "active"


def test_only_the_admin_reads_the_topology(trio):
    a, *_ = trio
    assert a.http.get("/v1/topology").status_code == 401
    r = a.user("p1", "GET", "/v1/topology")
    assert r.status_code == 403 and r.json()["error"]["code"], r.text
    r = a.http.get("/v1/topology", headers={"Authorization": "Bearer not-the-token"})
    assert r.status_code == 401


def test_the_page_holds_no_data_and_loads_nothing_from_elsewhere(trio):
    a, b, *_ = trio
    page = a.http.get("/ui/topology")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text == b.http.get("/ui/topology").text  # the same page for every agent
    assert a.admin_token not in page.text and "net1" not in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert page.headers["cache-control"] == "no-store"
    for external in ("http://", "https://", "src=", "<link"):
        assert external not in page.text.replace("http://www.w3.org/2000/svg", ""), external
    assert "/v1/topology" in page.text and "#token=" in page.text
    paths = a.http.get("/openapi.json").json()["paths"]
    assert "/v1/topology" in paths and "/ui/topology" not in paths
