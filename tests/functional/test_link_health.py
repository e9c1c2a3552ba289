"""Link checks in a reconciler pass: no health call through an encrypted link that is not up,
and fast passes while a link has just gone down."""

from __future__ import annotations

import httpx
import pytest

from tests.functional.federation_harness import Router, make_agent, peer


class CountingRouter(Router):
    def __init__(self) -> None:
        super().__init__()
        self.paths: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append((request.url.host, request.url.path))
        return super().handle_request(request)


@pytest.fixture
def pair(tmp_path):
    router = CountingRouter()
    a = make_agent(tmp_path, router, "A", 1)
    b = make_agent(tmp_path, router, "B", 2)
    peer(a, b)
    yield a, b, router
    for agent in (a, b):
        agent.ctx.store.dispose()


def test_no_health_call_through_a_link_whose_ipsec_is_down(pair):
    a, b, router = pair
    a.ctx.ipsec.fail_auth("link-B")
    router.paths.clear()
    result = a.ctx.reconciler.reconcile_once()
    assert (b.ip, "/v1/federation/health") not in router.paths
    status = a.admin("GET", "/v1/links/B").json()["status"]
    assert status["state"] == "down" and "authentication failed" in status["reason"], status
    assert result.links_down and result.retry_soon  # just went down: pass again soon
    a.ctx.ipsec.fail_auth("link-B", False)
    result = a.ctx.reconciler.reconcile_once()
    assert (b.ip, "/v1/federation/health") in router.paths
    assert a.admin("GET", "/v1/links/B").json()["status"]["state"] == "up"
    assert not result.links_down and not result.retry_soon


def test_fast_retries_stop_after_the_window(pair):
    from intercloud.reconciler import links

    a, _, _ = pair
    clock = [1000.0]
    a.ctx.reconciler.clock = lambda: clock[0]
    a.ctx.ipsec.fail_auth("link-B")
    assert a.ctx.reconciler.reconcile_once().retry_soon
    clock[0] += links.FAST_RETRY_WINDOW
    result = a.ctx.reconciler.reconcile_once()
    assert result.links_down and not result.retry_soon  # still down: every RETRY_LINK_DOWN


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

    def replica_puts() -> int:
        return sum(1 for host, path in router.paths if path.startswith("/v1/federation/replicas"))

    router.paths.clear()
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
