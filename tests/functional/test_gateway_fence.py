"""A gateway whose lease went to another one (HA) writes nothing (store/fence.py): its API
write answers 503 like a standby, its reconciler pass fails without a crash, its reads and
its federation health answers go on. On SQLite and on PostgreSQL (where the check also
share-locks the lease row: tests/integration/test_gateway_fence.py)."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import delete, insert, select

from intercloud.errors import Fenced
from intercloud.federation.peers import PeerRef
from intercloud.store import models as m
from intercloud.store.fence import Fence
from tests.functional.federation_harness import Router, converge, make_agent, peer


@pytest.fixture
def pair(tmp_path, databases):
    router = Router()
    a = make_agent(tmp_path, router, "A", 1, databases())
    b = make_agent(tmp_path, router, "B", 2, databases())
    peer(a, b)
    yield a, b
    for agent in (a, b):
        agent.ctx.store.dispose()


def _lease(agent, holder: str, token: int) -> None:
    """The lease row as the lease SQL would leave it (written beside the agent's sessions)."""
    with agent.ctx.store.engine.begin() as conn:
        conn.execute(delete(m.GatewayLease))
        conn.execute(insert(m.GatewayLease).values(cloud=agent.name, holder=holder, token=token))


def _gateway(agent, token: int) -> None:
    """`agent` becomes gateway gw1 of its cloud, holding `token`."""
    agent.ctx.store.fence = Fence(agent.name, "gw1", lambda: token)


def test_an_api_write_of_a_fenced_out_gateway_answers_503_like_a_standby(pair):
    a, _ = pair
    _lease(a, "gw1", 1)
    _gateway(a, 1)
    r = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]})
    assert r.status_code == 201, r.text
    _lease(a, "gw2", 2)  # another gateway took over
    r = a.user("p2", "POST", "/v1/expansions", {"network": "net2", "peers": ["B"]})
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "1"
    assert r.json() == {
        "error": {
            "code": "standby",
            "message": "gateway gw1 is no longer the active gateway of A "
            "(lease token 1, held: gw2 token 2); write refused",
            "field": None,
        },
        "active": "gw2",
    }
    # nothing of it was written; reads are served
    assert a.user("p2", "GET", "/v1/expansions").json() == []
    assert len(a.user("p1", "GET", "/v1/expansions").json()) == 1


def test_a_pass_of_a_fenced_out_gateway_fails_and_the_next_one_works(pair, caplog):
    a, b = pair
    _lease(a, "gw1", 1)
    _gateway(a, 1)
    uid = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]}).json()["id"]
    _lease(a, "gw2", 2)
    caplog.set_level(logging.WARNING, logger="intercloud.reconciler")
    a.reconcile()  # returns: the loop goes on
    assert "write refused" in (a.ctx.reconciler.stats.last_error or "")
    said = [r for r in caplog.records if "write refused" in r.getMessage()]
    assert said and all(r.exc_info is None for r in said)  # one line, no traceback
    assert a.user("p1", "GET", f"/v1/expansions/{uid}").json()["status"] != "active"
    with pytest.raises(Fenced), a.ctx.store.session() as s:
        s.add(m.VniAllocation(vni=4242, owner="stale"))
    with a.ctx.store.session() as s:
        assert s.scalar(select(m.VniAllocation).where(m.VniAllocation.vni == 4242)) is None
    # it takes the lease back (a new term): its passes write again
    _lease(a, "gw1", 3)
    _gateway(a, 3)
    converge(a, b)
    assert a.user("p1", "GET", f"/v1/expansions/{uid}").json()["status"] == "active"


def test_a_fenced_out_gateway_still_answers_a_peers_signed_read(pair):
    """Its nonce is bookkeeping any gateway records (api/auth.py), not the cloud's state."""
    a, b = pair
    _lease(a, "gw2", 2)
    _gateway(a, 1)
    with b.ctx.store.session() as s:
        key = s.scalar(select(m.Peer.key).where(m.Peer.name == "A"))
    client = b.ctx.reconciler.federation.peer(PeerRef("A", f"http://{a.ip}:8700", key))
    assert client.health().name == "A"
