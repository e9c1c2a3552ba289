"""Which plan steps the Linux driver can do in one `ip -batch` (ipbatch.py): those that make a
device that does not exist yet, into a bridge that exists or that the same batch makes."""

from __future__ import annotations

from collections.abc import Callable

from intercloud.domain.hoststate import Attachment, Bridge, Patch, Vxlan
from intercloud.domain.plan import Step
from intercloud.drivers.dataplane.linux import ipbatch
from intercloud.drivers.dataplane.linux.netlink import _HAS_DF, Link, _mark
from intercloud.errors import DriverError

Lookup = Callable[[str], Link | None]


# The kind of the interfaces each batched step makes (an attachment changes an interface of
# any kind: a batch with one is followed by a whole dump).
_MADE = {Bridge: ("bridge",), Vxlan: ("vxlan",), Patch: ("veth",)}


def kinds(steps: list[Step]) -> set[str] | None:
    """The kinds of interface a batch of `steps` made or changed; None: it may have changed
    interfaces of any kind."""
    out: set[str] = set()
    for step in steps:
        made = _MADE.get(type(step.obj))
        if made is None:
            return None
        out.update(made)
    return out


def touched(step: Step) -> tuple[str, ...]:
    """The interfaces a batched step's lines made or changed."""
    obj = step.obj
    if isinstance(obj, Patch):
        return (obj.name, obj.peer)
    if isinstance(obj, Attachment):
        return (obj.interface,)
    return (obj.name,) if isinstance(obj, (Bridge, Vxlan)) else ()


def whole(step: Step) -> bool:
    """Whether a batched step's lines are all of it, once ip did them without a complaint: all
    but a tunnel with a rate limit (its qdisc, then its coming up, are the ordinary step's)."""
    return not (isinstance(step.obj, Vxlan) and step.obj.rate_mbit is not None)


def lines(step: Step, lookup: Lookup, bridges: set[str]) -> list[ipbatch.Line] | None:
    """The ip lines for a step that makes a device that does not exist (None: not one, or a
    value ipbatch refuses to write: the ordinary step then says why). `bridges`: the bridges
    the batch makes so far (a bridge step adds its own)."""
    try:
        return _lines(step, lookup, bridges)
    except DriverError:
        return None


def _lines(step: Step, lookup: Lookup, bridges: set[str]) -> list[ipbatch.Line] | None:

    def bridge_ready(name: str) -> bool:
        link = lookup(name) if name not in bridges else None
        return name in bridges or (link is not None and link.kind == "bridge")

    obj = step.obj
    if step.verb == "ensure_bridge" and isinstance(obj, Bridge):
        if ipbatch.plain(obj.name) and lookup(obj.name) is None:
            bridges.add(obj.name)
            return ipbatch.bridge(obj, _mark(obj.mtu))
    elif step.verb == "ensure_vxlan" and isinstance(obj, Vxlan):
        if (
            ipbatch.plain(obj.name, obj.master)
            and lookup(obj.name) is None
            and bridge_ready(obj.master)
        ):
            return ipbatch.vxlan(obj, _mark(obj.mtu), _HAS_DF)
    elif step.verb == "ensure_patch" and isinstance(obj, Patch):
        if (
            ipbatch.plain(obj.name, obj.peer, obj.master, obj.peer_master)
            and lookup(obj.name) is None
            and lookup(obj.peer) is None
            and bridge_ready(obj.master)
            and (obj.peer_master in bridges or lookup(obj.peer_master) is not None)
        ):
            return ipbatch.patch(obj)
    elif (
        step.verb == "attach"
        and isinstance(obj, Attachment)
        and ipbatch.plain(obj.interface, obj.master)
        and bridge_ready(obj.master)
    ):
        link = lookup(obj.interface)
        if link is not None and link.kind != "bridge":  # a bridge cannot be a port
            return ipbatch.attach(obj)
    return None
