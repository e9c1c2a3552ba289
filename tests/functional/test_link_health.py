"""Link checks in a reconciler pass: no health call through an encrypted link that is not up,
and fast passes while a link has just gone down."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.functional.federation_harness import Router, peered_pair


class CountingRouter(Router):
    def __init__(self) -> None:
        super().__init__()
        self.paths: list[tuple[str, str]] = []
        self.confirmed: list[str] = []  # uids re-checked by confirmation calls

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append((request.url.host, request.url.path))
        if request.url.path == "/v1/federation/confirmations":
            self.confirmed += [r["uid"] for r in json.loads(request.content)["replicas"]]
        return super().handle_request(request)


def _coming_up(agent) -> bool:
    """Whether the rest after a pass asks a down link again soon (pacing.link_retry)."""
    from intercloud.reconciler import links

    rec = agent.ctx.reconciler
    return links.coming_up(rec.memory, rec.clock())


@pytest.fixture
def pair(tmp_path):
    router = CountingRouter()
    with peered_pair(tmp_path, router) as (a, b):
        yield a, b, router


def test_no_health_call_through_a_link_whose_ipsec_is_down(pair):
    a, b, router = pair
    a.ctx.ipsec.fail_auth("link-B")
    router.paths.clear()
    result = a.ctx.reconciler.reconcile_once()
    assert (b.ip, "/v1/federation/health") not in router.paths
    status = a.admin("GET", "/v1/links/B").json()["status"]
    assert status["state"] == "down" and "authentication failed" in status["reason"], status
    assert result.links_down and _coming_up(a)  # just went down: asked again soon
    a.ctx.ipsec.fail_auth("link-B", False)
    result = a.ctx.reconciler.reconcile_once()
    assert (b.ip, "/v1/federation/health") in router.paths
    assert a.admin("GET", "/v1/links/B").json()["status"]["state"] == "up"
    assert not result.links_down and not _coming_up(a)


def test_fast_retries_stop_after_the_window(pair):
    from intercloud.reconciler import links

    a, _, _ = pair
    clock = [1000.0]
    a.ctx.reconciler.clock = lambda: clock[0]
    a.ctx.ipsec.fail_auth("link-B")
    a.ctx.reconciler.reconcile_once()
    assert _coming_up(a)
    clock[0] += links.FAST_RETRY_WINDOW
    result = a.ctx.reconciler.reconcile_once()
    assert result.links_down and not _coming_up(a)  # still down: every RETRY_LINK_DOWN


def test_after_a_restart_replicas_are_confirmed_spread_over_the_refresh_window(pair):
    """A restarted agent does not ask every peer about every expansion in its first pass (at
    1,000 expansions that was a 75 s pass, every minute): each is confirmed once per window."""
    from intercloud.reconciler import Reconciler
    from intercloud.reconciler.memory import PEER_REFRESH

    a, b, router = pair
    tokens = a.tokens
    for project in ("p1", "p2"):
        r = a.http.post(
            "/v1/expansions",
            json={"network": "net1" if project == "p1" else "net2", "peers": ["B"]},
            headers={"Authorization": f"Bearer {tokens[project]}"},
        )
        assert r.status_code == 201, r.text
    for _ in range(4):
        a.reconcile()
        b.reconcile()
    old = a.ctx.reconciler
    clock = [1000.0]
    fresh = Reconciler(
        old.cfg, old.store, old.cloud, old.dataplane, old.federation, old.ipsec,
        clock=lambda: clock[0],
    )  # fmt: skip

    def replica_puts() -> int:  # re-checks: a PUT each, or many in a confirmation call
        puts = sum(1 for host, path in router.paths if path.startswith("/v1/federation/replicas"))
        return puts + len(router.confirmed)

    router.paths.clear()
    router.confirmed.clear()  # (the pending ones were asked in confirmations while agreeing)
    fresh.reconcile_once()
    assert replica_puts() == 0  # the first pass after the restart asks nobody
    seen = 0
    for _ in range(6):  # one refresh window later every replica was confirmed exactly once
        clock[0] += PEER_REFRESH / 6
        fresh.reconcile_once()
        seen = replica_puts()
    assert seen == 2
    clock[0] += PEER_REFRESH
    fresh.reconcile_once()
    assert replica_puts() == 4


def _expanded(a, b) -> None:
    r = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]})
    assert r.status_code == 201, r.text
    for _ in range(4):
        a.reconcile()
        b.reconcile()
    assert a.user("p1", "GET", "/v1/expansions").json()[0]["status"] == "active"


def test_a_peer_that_is_away_is_watched_by_health_calls_alone(pair):
    """While B is away, A's expansion to B waits for the link without making the pass
    unsettled (a pass over every expansion is not how to wait for one peer); between passes
    only B's health is asked, and nothing is written until the pass after it answers."""
    from intercloud.reconciler import links

    a, b, router = pair
    _expanded(a, b)
    router.down.add(b.ip)
    a.ctx.reconciler.memory.healthy_at.clear()  # B answered a moment ago: asked again now
    result = a.ctx.reconciler.reconcile_once()
    assert result.links_down and result.settled, result
    parts, memory = a.ctx.reconciler._parts(), a.ctx.reconciler.memory
    router.paths.clear()
    assert not links.back(parts, memory)
    assert set(router.paths) == {(b.ip, "/v1/federation/health")}, router.paths
    router.down.discard(b.ip)
    assert links.back(parts, memory)
    assert a.admin("GET", "/v1/links/B").json()["status"]["state"] == "down"  # not written
    result = a.ctx.reconciler.reconcile_once()
    assert not result.links_down
    assert a.admin("GET", "/v1/links/B").json()["status"]["state"] == "up"


def test_the_rest_after_a_pass_ends_when_a_link_is_back(pair):
    a, b, router = pair
    rec = a.ctx.reconciler
    router.down.add(b.ip)
    assert rec.reconcile_once().links_down
    passes = rec.stats.passes
    rec.rest(0, links_down=False)  # the API's triggers while the test set up (no loop runs)
    router.paths.clear()
    assert rec.rest(0.8, links_down=True) == "due"  # B still away: health calls only
    assert router.paths and set(router.paths) == {(b.ip, "/v1/federation/health")}
    assert rec.stats.passes == passes
    router.down.discard(b.ip)
    assert rec.rest(30.0, links_down=True) == "link back"
    rec.trigger()
    assert rec.rest(30.0, links_down=True) == "triggered"
    router.paths.clear()
    assert rec.rest(0.4, links_down=False) == "due"
    assert router.paths == []  # no link down: nobody is asked between passes


def test_an_encrypted_link_is_back_once_its_ipsec_is_up_and_its_peer_answers(pair):
    from intercloud.reconciler import links

    a, b, router = pair
    a.ctx.ipsec.fail_auth("link-B")
    assert a.ctx.reconciler.reconcile_once().links_down
    parts, memory = a.ctx.reconciler._parts(), a.ctx.reconciler.memory
    router.paths.clear()
    assert not links.back(parts, memory)
    assert router.paths == []  # no health call through a link whose IPsec is down
    a.ctx.ipsec.fail_auth("link-B", False)
    assert links.back(parts, memory)


def test_a_triggered_pass_waits_for_the_gap_but_a_take_over_does_not(pair):
    import time

    a, _, _ = pair
    rec = a.ctx.reconciler
    rec.rest(0, links_down=False)
    rec.trigger()
    started = time.monotonic()
    assert rec.rest(30.0, links_down=False, gap=0.5) == "triggered"
    assert time.monotonic() - started >= 0.5  # the triggers of that while: one pass
    rec.took_over()
    started = time.monotonic()
    assert rec.rest(30.0, links_down=False, gap=20.0) == "triggered"
    assert time.monotonic() - started < 10.0  # traffic first: no gap
    rec.memory.taking_over = False
