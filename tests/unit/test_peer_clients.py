"""One pooled client per peer: kept while the peer stays the same, replaced (the old one closed)
when an admin changes its URL or key, all closed with the reconciler."""

from __future__ import annotations

import httpx

from intercloud.federation.peers import Federation, PeerRef


def _federation() -> Federation:
    return Federation("A", transport=httpx.MockTransport(lambda r: httpx.Response(500)))


def test_a_rekeyed_peer_gets_a_fresh_client_and_the_old_one_is_closed():
    federation = _federation()
    first = federation.peer(PeerRef("B", "https://198.18.2.2:8700", "k" * 32))
    http = first._client()
    assert federation.peer(PeerRef("B", "https://198.18.2.2:8700", "k" * 32)) is first
    second = federation.peer(PeerRef("B", "https://198.18.2.2:8700", "n" * 32))
    assert second is not first and http.is_closed
    moved = federation.peer(PeerRef("B", "https://198.18.9.9:8700", "n" * 32))
    assert moved is not second


def test_closing_closes_every_peer_client():
    federation = _federation()
    clients = [federation.peer(PeerRef(n, f"https://{n}.example:8700", "k" * 32)) for n in "BC"]
    https = [c._client() for c in clients]
    federation.close()
    assert all(h.is_closed for h in https)


def test_a_peer_key_is_not_in_its_repr():
    assert "secret" not in repr(PeerRef("B", "https://b", "secret" * 6))
