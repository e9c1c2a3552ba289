"""The MTU budget of a link, from its settings and what IPsec really does (observed)."""

from __future__ import annotations

from typing import Any

from intercloud.domain import mtu
from intercloud.service import policies
from intercloud.store import models as m

# kernel-libipsec's TUN device (ipsec0) has this MTU unless charon is told otherwise
LIBIPSEC_TUN_MTU = 1400


def encryption_of(lk: m.Link) -> tuple[mtu.Encryption, int | None]:
    """How the tunnel packets are carried, and any cap on their size."""
    if not lk.encrypted:
        return mtu.Encryption.NONE, None
    status = lk.ipsec_status or {}
    if status.get("backend") == "kernel-libipsec":
        return mtu.Encryption.ESP_TUNNEL_NATT, LIBIPSEC_TUN_MTU  # always UDP-encapsulated
    if status.get("nat_detected"):
        return mtu.Encryption.ESP_TUNNEL_NATT, None
    mode = policies.to_ipsec(lk.ipsec_policy).mode
    return (
        mtu.Encryption.ESP_TRANSPORT if mode == "transport" else mtu.Encryption.ESP_TUNNEL,
        None,
    )


def link_budget(lk: m.Link) -> mtu.LinkMtu:
    encryption, cap = encryption_of(lk)
    proposal = policies.to_ipsec(lk.ipsec_policy).proposals()[0]
    try:
        cipher = mtu.cipher_for_proposal(proposal)
    except ValueError:
        cipher = mtu.DEFAULT_CIPHER
    return mtu.link_mtu(lk.mtu, lk.tunnel_type, encryption, cipher, ipsec_mtu=cap)


def view(lk: m.Link) -> dict[str, Any]:
    b = link_budget(lk)
    return {
        "underlay_mtu": b.underlay_mtu,
        "encapsulation": str(b.encryption),
        "vm_mtu": b.vm_mtu,
        "tcp_mss": b.mss,
        "layers": [{"layer": name, "bytes": n} for name, n in b.layers],
    }
