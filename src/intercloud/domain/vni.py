"""VNI allocation. A VNI is agreed per link, but Linux refuses two VXLAN devices with the same
VNI on the same UDP port in one namespace, so each agent keeps its VNIs unique across all its
links; two agents agree on the lowest VNI free on both sides."""

from __future__ import annotations

from collections.abc import Iterable

from intercloud.domain.validation import VNI_MAX, VNI_MIN
from intercloud.errors import Conflict, Invalid


def lowest_free(used: Iterable[int], low: int = VNI_MIN, high: int = VNI_MAX) -> int:
    if not VNI_MIN <= low <= high <= VNI_MAX:
        raise Invalid(
            f"vni range: {low}-{high} is not within {VNI_MIN}-{VNI_MAX}", field="vni_range"
        )
    taken = {v for v in used if low <= v <= high}
    candidate = low
    for v in sorted(taken):
        if v > candidate:
            break
        candidate = v + 1
    if candidate > high:
        raise Conflict(f"vni: no free VNI left in {low}-{high}", field="vni")
    return candidate


def unavailable(vni: int) -> Conflict:
    """The one refusal of a requested VNI, whatever the reason (taken by anyone, or outside
    what the answering agent hands out): it never says which, nor whose, so that asking is no
    oracle of other projects' or clouds' VNIs (docs/api.md)."""
    return Conflict(
        f"vni: {vni} is not available; ask without a vni to have one chosen", field="vni"
    )


def agree(
    local_used: Iterable[int],
    peer_used: Iterable[int],
    requested: int | None = None,
    low: int = VNI_MIN,
    high: int = VNI_MAX,
) -> int:
    """The VNI both sides can use: the requested one if free on both and within low-high,
    else the lowest free."""
    busy = set(local_used) | set(peer_used)
    if requested is not None:
        if requested in busy or not low <= requested <= high:
            raise unavailable(requested)
        return requested
    return lowest_free(busy, low, high)
