"""A peer and its link in a test's store: the rows the IPsec phase reads."""

from __future__ import annotations

from sqlalchemy.orm import Session

from intercloud.store import models as m


def add_peer_link(
    s: Session,
    name: str,
    address: str,
    *,
    encrypted: bool = True,
    enabled: bool = True,
    tunnel_endpoint: str | None = None,
) -> None:
    """Peer `name` at `address`, linked from 198.18.1.2 (PSK and key: test values)."""
    peer = m.Peer(
        name=name,
        federation_url=f"http://{address}:8700",
        underlay_endpoint=address,
        key="k" * 32,
    )
    s.add(peer)
    s.flush()
    s.add(
        m.Link(
            peer_id=peer.id,
            local_endpoint="198.18.1.2",
            remote_endpoint=address,
            encrypted=encrypted,
            enabled=enabled,
            psk="p" * 32,
            peer_tunnel_endpoint=tunnel_endpoint,
        )
    )
