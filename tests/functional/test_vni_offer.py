"""A new replica's VNI is chosen in an offer (service/allocations.offer): the origin sends the
part of its range that starts at its lowest free VNI, with only the VNIs in use in that part,
not every VNI in use here; a peer with none free in that part is asked again over the whole
range, as before."""

from __future__ import annotations

import json

import httpx
import pytest

from intercloud.service import allocations
from intercloud.store import models as m
from tests.functional.federation_harness import Router, peered_pair


class Recording(Router):
    def __init__(self) -> None:
        super().__init__()
        self.agreements: list[tuple[dict, int]] = []  # (body, answer status)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "PUT" and request.url.path.endswith("/vni"):
            self.agreements.append((json.loads(request.content), response.status_code))
        return response


@pytest.fixture
def agents(tmp_path):
    router = Recording()
    with peered_pair(tmp_path, router) as (a, b):
        yield a, b, router


def _hold(agent, *vnis: int) -> None:
    """VNIs held on `agent` by something else (as direct tunnels of other networks)."""
    with agent.ctx.store.session() as s:
        for vni in vnis:
            s.add(m.VniAllocation(vni=vni, owner=f"a:{9000 + vni}"))


def _expand(a, b, project: str, network: str) -> int:
    r = a.user(project, "POST", "/v1/expansions", {"network": network, "peers": ["B"]})
    assert r.status_code == 201, r.text
    for _ in range(3):
        a.reconcile()
        b.reconcile()
    (e,) = [e for e in a.user(project, "GET", "/v1/expansions").json() if e["id"] == r.json()["id"]]
    vni = e["peers"][0]["vni"]
    assert isinstance(vni, int), e
    return vni


def test_the_offer_carries_only_the_vnis_in_use_in_it(agents):
    a, b, router = agents
    low = allocations.OFFER_WIDTH
    in_use = list(range(low, low + 3 * allocations.OFFER_WIDTH, 2))  # every other, 3 offers' worth
    _hold(a, *in_use)
    vni = _expand(a, b, "p1", "net1")
    ((body, status),) = router.agreements
    assert status == 200 and vni not in in_use
    start, top = body["vni_min"], body["vni_max"]
    assert top - start + 1 == allocations.OFFER_WIDTH and start <= vni <= top
    assert body["exclude"] == [v for v in in_use if start <= v <= top]
    assert len(body["exclude"]) < len(in_use)  # was every one


def test_a_peer_with_none_free_in_the_offer_is_asked_over_the_whole_range(agents, monkeypatch):
    a, b, router = agents
    monkeypatch.setattr(allocations, "OFFER_WIDTH", 8)
    _expand(a, b, "p1", "net1")  # the lowest free on both
    with a.ctx.store.session() as s:
        first = s.query(m.VniAllocation.vni).scalar()
    _hold(b, *range(first + 1, first + 9))  # B holds all of A's next offer
    router.agreements.clear()
    vni = _expand(a, b, "p2", "net2")
    (offered, refused), (whole, agreed) = router.agreements
    assert refused == 409 and offered["vni_max"] - offered["vni_min"] == 7
    assert agreed == 200 and whole["vni_max"] - whole["vni_min"] > 7
    assert vni == first + 9  # the lowest free on both sides
