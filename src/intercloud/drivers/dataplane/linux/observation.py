"""The kernel's interfaces (netlink.Link) read as the Linux driver's HostState: which are ours
(named with the agent's prefix), what each says, and the kind of the operator's interfaces."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from intercloud.domain.hoststate import Attachment, Bridge, HostState, Patch, Vxlan
from intercloud.drivers.dataplane.linux.netlink import Link


def read(
    prefix: str, links: list[Link], rates: Mapping[str, int], foreign: Iterable[str]
) -> tuple[HostState, dict[str, str | None]]:
    """Our objects among `links` (`rates`: our tbf's bytes/s by device), an Attachment for
    each `foreign` interface in one of our bridges, and the kind of each `foreign` one."""
    by_index = {link.index: link for link in links}
    by_name = {link.name: link for link in links}

    def name_of(index: int) -> str:
        return by_index[index].name if index in by_index else ""

    state = HostState()
    for link in links:
        obj = _ours(prefix, link, name_of(link.master), by_index, rates)
        if obj is not None:
            state.add(obj)
    kinds: dict[str, str | None] = {}
    for name in foreign:
        found = by_name.get(name)
        kinds[name] = kind(found)
        if found is not None and name_of(found.master) in state.bridges:
            state.add(Attachment(name, name_of(found.master)))
    return state, kinds


def _ours(
    prefix: str, link: Link, master: str, by_index: Mapping[int, Link], rates: Mapping[str, int]
) -> Bridge | Vxlan | Patch | None:
    """The object `link` is, if it is one of ours."""
    n = len(prefix)
    if link.name[:n] != prefix:
        return None
    tag = link.name[n : n + 1]
    if tag == "b" and link.kind == "bridge":
        return Bridge(link.name, mtu=link.marked_mtu)
    if tag == "v" and link.kind == "vxlan":
        kbit = None if link.name not in rates else max(rates[link.name] // 125, 1)
        return vxlan(link, master, rate_mbit=None if kbit is None else kbit / 1000)
    if tag == "p" and link.kind == "veth":
        peer = by_index.get(link.peer) if not link.peer_elsewhere else None
        peer_master = by_index.get(peer.master) if peer else None
        return Patch(
            name=link.name,
            peer=peer.name if peer else "",
            master=master,
            peer_master=peer_master.name if peer_master else "",
        )
    return None


def vxlan(link: Link, master: str, rate_mbit: float | None = None) -> Vxlan:
    """A VXLAN device as a Vxlan (no MSS: it lives elsewhere; the rate, its qdisc's, given)."""
    d = link.data
    return Vxlan(
        name=link.name,
        vni=d.get("IFLA_VXLAN_ID", 0),
        local=d.get("IFLA_VXLAN_LOCAL") or d.get("IFLA_VXLAN_LOCAL6") or "",
        remote=d.get("IFLA_VXLAN_GROUP") or d.get("IFLA_VXLAN_GROUP6") or "",
        master=master,
        port=d.get("IFLA_VXLAN_PORT", 0),
        mtu=link.marked_mtu,
        isolated=bool(link.slave.get("IFLA_BRPORT_ISOLATED", 0)) if master else False,
        rate_mbit=rate_mbit,
    )


def kind(link: Link | None) -> str | None:
    """interface_kind()'s answer for `link` (None: absent)."""
    if link is None:
        return None
    return link.kind if link.kind in ("bridge", "veth", "vxlan") else "other"
