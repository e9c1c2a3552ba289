"""The data-plane phase observes the host once when every step of its plan is done, and again
only after a step failed: what is still missing is then not reported as built."""

from __future__ import annotations

from tests.functional.federation_harness import Router, converge, make_agent, peer


def _pair(tmp_path):
    router = Router()
    a = make_agent(tmp_path, router, "A", 1)
    b = make_agent(tmp_path, router, "B", 2)
    peer(a, b)
    a.reconcile(2)
    b.reconcile(2)
    return a, b


def _expand(a, b) -> str:
    r = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]})
    assert r.status_code in (201, 202), r.text
    b.reconcile()
    return str(r.json()["id"])


def _tunnels(agent) -> list[str]:
    return sorted(n for n, link in agent.dataplane.links.items() if link.kind == "vxlan")


def test_a_pass_whose_steps_all_succeed_observes_once(tmp_path):
    a, b = _pair(tmp_path)
    try:
        _expand(a, b)
        before = a.dataplane.observations
        changes = a.ctx.reconciler.reconcile_once().changes
        assert changes > 0 and _tunnels(a)  # the pass made the tunnel port
        assert a.dataplane.observations - before == 1
    finally:
        a.ctx.store.dispose()
        b.ctx.store.dispose()


def test_a_failed_step_observes_again_and_its_tunnel_is_not_reported_built(tmp_path):
    a, b = _pair(tmp_path)
    try:
        uid = _expand(a, b)
        converge(a, b)
        assert a.user("p1", "GET", f"/v1/expansions/{uid}").json()["status"] == "active"
        (tunnel,) = _tunnels(a)
        a.dataplane.links.pop(tunnel)  # gone behind the agent's back
        a.dataplane.fail("ensure_vxlan", "injected: cannot create vxlan")
        before = a.dataplane.observations
        result = a.ctx.reconciler.reconcile_once()
        assert any("injected" in e for e in result.errors)
        assert a.dataplane.observations - before == 2
        assert not _tunnels(a)
        exp = a.user("p1", "GET", f"/v1/expansions/{uid}").json()
        assert exp["status"] != "active", exp
        converge(a, b)  # the next passes make it again
        assert _tunnels(a) == [tunnel]
        assert a.user("p1", "GET", f"/v1/expansions/{uid}").json()["status"] == "active"
    finally:
        a.ctx.store.dispose()
        b.ctx.store.dispose()
