"""The busiest reads answered from the read cache before the framework (api/fast_reads.py):
the same answers as the framework's, a write seen by the next read, every refusal still the
application's."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def served(agent) -> int:
    return agent.http.app.fast_reads.served


def test_a_kept_view_is_answered_first_hand_and_alike(pair):
    a, _ = pair
    for call in (
        lambda: a.user("p1", "GET", "/v1/expansions"),
        lambda: a.admin("GET", "/v1/links"),
        lambda: a.admin("GET", "/v1/peers"),
        lambda: a.admin("GET", "/v1/agreements"),
    ):
        before = served(a)
        first = call()  # built by the application (nothing kept since the last write)
        assert served(a) == before
        second = call()  # kept: answered before the framework
        assert served(a) == before + 1
        assert second.status_code == first.status_code == 200
        assert second.content == first.content
        for header in ("content-type", "content-length"):
            assert second.headers[header] == first.headers[header]


def test_a_read_after_a_write_sees_the_write(pair):
    a, b = pair
    assert a.user("p1", "GET", "/v1/expansions").json() == []
    assert a.user("p1", "GET", "/v1/expansions").json() == []
    before = served(a)
    uid = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]}).json()["id"]
    listed = a.user("p1", "GET", "/v1/expansions").json()
    assert [(e["id"], e["status"]) for e in listed] == [(uid, "pending")]
    assert served(a) == before  # the write outdated the kept view: built again
    assert a.user("p1", "GET", "/v1/expansions").json() == listed
    assert served(a) == before + 1
    for _ in range(4):  # the reconcilers' status writes show too
        a.reconcile()
        b.reconcile()
    assert a.user("p1", "GET", "/v1/expansions").json()[0]["status"] == "active"
    assert a.user("p2", "GET", "/v1/expansions").json() == []  # kept per project
    a.admin("GET", "/v1/links")
    mtu = a.admin("GET", "/v1/links").json()[0]["mtu"]
    r = a.admin("PATCH", "/v1/links/B", {"mtu": mtu - 10})
    assert r.status_code == 200, r.text
    assert a.admin("GET", "/v1/links").json()[0]["mtu"] == mtu - 10


def test_refusals_and_other_requests_are_the_applications(pair):
    a, _ = pair
    for _ in range(2):  # both views kept
        a.user("p1", "GET", "/v1/expansions")
        a.admin("GET", "/v1/links")
    before = served(a)
    no_token = a.http.get("/v1/expansions")
    assert no_token.status_code == 401
    bad = a.http.get("/v1/links", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.json()["error"]["message"] == "invalid token"
    assert a.admin("GET", "/v1/expansions").status_code == 403  # the admin is no project
    assert a.user("p1", "GET", "/v1/links").status_code == 403
    with_query = a.user("p1", "GET", "/v1/expansions?x=1")
    assert with_query.status_code == 200
    head = a.http.head("/v1/links", headers={"Authorization": f"Bearer {a.admin_token}"})
    assert head.status_code == 405
    assert served(a) == before
    # the other way of giving a token (OpenStack clients) is read alike
    other = a.http.get("/v1/expansions", headers={"X-Auth-Token": a.tokens["p1"]})
    assert other.status_code == 200 and served(a) == before + 1


def test_answers_given_first_hand_are_counted_by_route(pair):
    a, _ = pair
    for _ in range(3):
        assert a.admin("GET", "/v1/links").status_code == 200
    assert served(a) == 2
    text = a.admin("GET", "/metrics").text
    counts = {
        (s.labels["route"], s.labels["method"], s.labels["status"]): s.value
        for f in text_string_to_metric_families(text)
        if f.name == "intercloud_api_request_duration_seconds"
        for s in f.samples
        if s.name.endswith("_count")
    }
    assert counts[("/v1/links", "GET", "200")] == 3


def test_a_converged_pass_outdates_the_links_views_only(pair):
    """Every pass writes each link's check time (and IPsec counters): the links' views show
    it at once, while the expansions' stay kept and answered first hand."""
    a, b = pair
    a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]})
    for _ in range(4):
        a.reconcile()
        b.reconcile()
    for _ in range(2):
        expansions = a.user("p1", "GET", "/v1/expansions").json()
        links = a.admin("GET", "/v1/links").json()
    assert expansions[0]["status"] == "active"
    before = served(a)
    assert a.reconcile() == 0  # converged: it only checks the links again
    assert a.user("p1", "GET", "/v1/expansions").json() == expansions
    assert served(a) == before + 1  # still current: answered first hand
    checked = a.admin("GET", "/v1/links").json()[0]["status"]["checked_at"]
    assert checked > links[0]["status"]["checked_at"]  # the pass's check, seen at once
    assert served(a) == before + 1  # built again, not served as kept
    shown = a.admin("GET", "/v1/topology").json()
    a.reconcile()
    again = a.admin("GET", "/v1/topology").json()  # the topology shows the checks too
    assert again["links"][0]["checked_at"] > shown["links"][0]["checked_at"]
