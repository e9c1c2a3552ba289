"""The topology view's link (service/topology.py): bytes summed over every CHILD_SA of a link,
its lanes' included; unknown without an IPsec status."""

from __future__ import annotations

from types import SimpleNamespace

from intercloud.service import topology


def link(ipsec):
    return SimpleNamespace(
        peer=SimpleNamespace(name="B"),
        state="up",
        reason="",
        enabled=True,
        encrypted=ipsec is not None,
        checked_at=None,
        ipsec_status=ipsec,
    )


def test_bytes_are_summed_over_every_child_sa_and_lane():
    ipsec = {
        "ike_state": "ESTABLISHED",
        "children": [{"bytes_in": 10, "bytes_out": 20}, {"bytes_in": 1, "bytes_out": 2}],
        "lanes": [
            {"lane": 1, "children": [{"bytes_in": 100, "bytes_out": 200}]},
            {"lane": 2, "children": None},
        ],
    }
    view = topology.link(link(ipsec), "A")  # type: ignore[arg-type]
    assert view["between"] == ["A", "B"] and view["ike_state"] == "ESTABLISHED"
    assert (view["bytes_in"], view["bytes_out"]) == (111, 222)
    assert view["rtt_ms"] is None


def test_a_link_without_ipsec_has_no_bytes():
    view = topology.link(link(None), "A")  # type: ignore[arg-type]
    assert view["bytes_in"] is None and view["bytes_out"] is None and view["ike_state"] is None
