"""The thin netlink layer of the Linux data plane: one method, one rtnetlink request.

`NetlinkError` becomes a `DriverError` that names the interface ("cannot create vxlan icv100:
File exists"); the tolerant logic (create what is missing, change what differs) is in driver.py.

One exception: the dump of every interface (observe, each pass) is read from iproute2's JSON
(`ip -d -j link show`), not decoded by pyroute2: 3,000 interfaces take 0.14 s that way and
1.6 s through pyroute2's decoder (measured here), which made a converged pass at 1,000
expansions last seconds. pyroute2 stays the fallback when `ip` is missing.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifinfmsg.plugins.vxlan import vxlan as _vxlan_nla

from intercloud.domain import text
from intercloud.drivers.dataplane.linux import checks, tooljson
from intercloud.drivers.nsexec import in_netns, iproute_in
from intercloud.errors import DriverError

MTU_MARK = "intercloud:mtu="
QDISC_HANDLE = 0x01C10000  # "1c1:", our root tbf on a VXLAN device
TC_H_ROOT = 0xFFFFFFFF
_OUR_HANDLE = f"{QDISC_HANDLE >> 16:x}:"  # as `tc -j` prints it
TBF_LATENCY_S = 0.05  # queue: at most 50 ms of traffic waits in the tbf
TBF_MIN_BURST = 64 * 1024  # a whole GSO packet passes without being split
TBF_BURST_S = 0.004  # at high rates: 4 ms of traffic (one jiffy at HZ=250)
MAX_RATE_BYTES = 2**32 - 1  # tbf's 32-bit rate field (34.3 Gbit/s); beyond needs RATE64
DUMP_KINDS = frozenset({"bridge", "vxlan", "veth"})  # the kinds the driver makes
TOOL_ATTEMPTS = 3  # an `ip`/`tc` dump that fails (e.g. interrupted) is asked again
TOOL_TIMEOUT_S = 60.0
_IFF_UP = 0x1
T = TypeVar("T")
# VXLAN_DF_UNSET: outer packets may fragment. Only sent where pyroute2 knows the attribute.
_HAS_DF = any(name == "IFLA_VXLAN_DF" for name, *_ in _vxlan_nla.nla_map)


@dataclass(frozen=True, slots=True)
class Link:
    """The parts of one RTM_NEWLINK message the driver looks at."""

    index: int
    name: str
    kind: str | None
    mtu: int
    master: int  # 0 = none
    up: bool
    alias: str | None
    data: Mapping[str, Any]  # IFLA_INFO_DATA (vxlan: IFLA_VXLAN_*)
    slave: Mapping[str, Any]  # IFLA_INFO_SLAVE_DATA (bridge port: IFLA_BRPORT_*)
    peer: int  # IFLA_LINK (a veth's peer), 0 = none
    peer_elsewhere: bool  # IFLA_LINK_NETNSID present: the peer lives in another namespace
    qdisc: str | None = None  # IFLA_QDISC: the kind of its root qdisc (None: not told)

    @property
    def marked_mtu(self) -> int | None:
        """The MTU under the observation rule (module docstring)."""
        return self.mtu if (self.alias or "").startswith(MTU_MARK) else None


def tbf_params(rate_mbit: float) -> tuple[int, int, int]:
    """(rate in bytes/s, burst in bytes, queue limit in bytes) of the tbf for `rate_mbit`.

    burst = max(64 KiB, 4 ms of traffic): a whole 64 KiB GSO packet fits the bucket (not split
    per segment), and at high rates one 250 Hz tick's worth. limit = burst + 50 ms of traffic.
    The rate counts inner Ethernet frames, so TCP goodput is rate x 1398/1464 = 0.955 at MTU
    1450. Measured (iperf3, 4 s, namespaces) goodput/rate at 50 / 500 / 2000 Mbit/s: this burst
    0.956 / 0.956 / 0.956; 64 KiB alone 0.956 / 0.954 / 0.915; 16 KiB 0.954 / 0.948 / 0.852;
    one frame (1514 B): nothing passes at all (the tick-rounded bucket is below a frame)."""
    rate = round(rate_mbit * 1000) * 125  # whole kbit/s, as Vxlan stores it
    if not 0 < rate <= MAX_RATE_BYTES:
        raise DriverError(f"cannot limit to {rate_mbit} Mbit/s: tbf takes 0.001..34359 Mbit/s")
    burst = max(TBF_MIN_BURST, round(rate * TBF_BURST_S))
    return rate, burst, burst + round(rate * TBF_LATENCY_S)


_DF = {"unset": 0, "set": 1, "inherit": 2}
# Every key _listed reads, at any depth of `ip -d -j link show`'s objects. The dump is
# decoded with the rest dropped object by object: a bridge port's details alone are ~40 keys
# (3,000 bridges with a port and a veth pair each: 14 MB of JSON decoded to 55 MB of objects
# at the peak whole, 29 MB this way).
_LINK_KEYS = frozenset(
    {
        *("ifindex", "ifname", "mtu", "master", "flags", "ifalias", "qdisc", "linkinfo"),
        *("link", "link_index", "link_netnsid"),
        *("info_kind", "info_data", "info_slave_kind", "info_slave_data"),
        *("id", "local", "remote", "group", "port", "learning", "df"),  # vxlan
        "isolated",  # bridge port
    }
)


def _kept(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k in _LINK_KEYS}


# Shared by every Link that has them (most): not one dictionary per interface. Read-only.
_NO_ATTRS: Mapping[str, Any] = MappingProxyType({})
_PORT: dict[bool, Mapping[str, Any]] = {
    flag: MappingProxyType({"IFLA_BRPORT_ISOLATED": int(flag)}) for flag in (False, True)
}


class _Listed(NamedTuple):
    """One interface of `ip -j link show`, its master and peer still named."""

    ifindex: int
    name: str
    kind: str | None
    mtu: int
    master: str
    up: bool
    alias: str | None
    data: Mapping[str, Any]
    slave: Mapping[str, Any]
    peer: str | int  # a name, or an index in another namespace (`elsewhere`)
    elsewhere: bool
    qdisc: str | None


def _listed(d: Any) -> _Listed:
    """One object of `ip -d -j link show` (its keys already cut to _LINK_KEYS)."""
    if not isinstance(d, dict) or not isinstance(d.get("ifname"), str):
        raise DriverError("ip -j link show printed an interface without a name")
    info = d.get("linkinfo") or {}
    data = _NO_ATTRS
    if info.get("info_kind") == "vxlan":
        v = info.get("info_data") or {}
        data = {
            "IFLA_VXLAN_ID": v.get("id", 0),
            "IFLA_VXLAN_LOCAL": v.get("local", ""),
            "IFLA_VXLAN_GROUP": v.get("remote") or v.get("group", ""),
            "IFLA_VXLAN_PORT": v.get("port", 0),
            "IFLA_VXLAN_LEARNING": int(bool(v.get("learning", True))),
            "IFLA_VXLAN_DF": _DF.get(v.get("df", "unset"), 0),
        }
    slave = _NO_ATTRS
    if info.get("info_slave_kind") == "bridge":
        slave = _PORT[bool((info.get("info_slave_data") or {}).get("isolated", False))]
    elsewhere = "link_netnsid" in d
    return _Listed(
        ifindex=d.get("ifindex", 0),
        name=d["ifname"],
        kind=info.get("info_kind"),
        mtu=d.get("mtu", 0),
        master=d.get("master") or "",
        up="UP" in d.get("flags", ()),
        alias=d.get("ifalias"),
        data=data,
        slave=slave,
        peer=d.get("link_index", 0) if elsewhere else d.get("link") or "",
        elsewhere=elsewhere,
        qdisc=d.get("qdisc"),
    )


def _links(listed: list[_Listed], others: Mapping[str, int] | None = None) -> list[Link]:
    """The Links of `listed`, masters and peers by index. `others`: name -> index of
    interfaces outside the list (a dump of one kind names masters and peers it does not
    hold)."""
    index = {**(others or {}), **{d.name: d.ifindex for d in listed}}
    return [
        Link(
            index=d.ifindex,
            name=d.name,
            kind=d.kind,
            mtu=d.mtu,
            master=index.get(d.master, 0),
            up=d.up,
            alias=d.alias,
            data=d.data,
            slave=d.slave,
            peer=d.peer if isinstance(d.peer, int) else index.get(d.peer, 0),
            peer_elsewhere=d.elsewhere,
            qdisc=d.qdisc,
        )
        for d in listed
    ]


def _our_rate(q: Any) -> tuple[str, int] | None:
    """(interface name, rate in bytes/s) of one `tc -j qdisc show` object if it is our root
    tbf (handle 1c1:), else None."""
    if not isinstance(q, dict) or q.get("kind") != "tbf" or not q.get("root"):
        return None
    if q.get("handle") != _OUR_HANDLE or not isinstance(q.get("dev"), str):
        return None
    return q["dev"], int((q.get("options") or {}).get("rate", 0))


def _attrs(nla: Any) -> dict[str, Any]:
    return {} if nla is None else {k: v for k, v in nla.get("attrs", ()) if k != "UNKNOWN"}


def _parse(msg: Any) -> Link:
    info = msg.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
    data = _attrs(info.get_attr("IFLA_INFO_DATA")) if info is not None else {}
    slave = _attrs(info.get_attr("IFLA_INFO_SLAVE_DATA")) if info is not None else {}
    return Link(
        index=msg["index"],
        name=msg.get_attr("IFLA_IFNAME"),
        kind=kind,
        mtu=msg.get_attr("IFLA_MTU") or 0,
        master=msg.get_attr("IFLA_MASTER") or 0,
        up=bool(msg["flags"] & _IFF_UP),
        alias=msg.get_attr("IFLA_IFALIAS"),
        data=data if isinstance(data, dict) else {},
        slave=slave if isinstance(slave, dict) else {},
        peer=msg.get_attr("IFLA_LINK") or 0,
        peer_elsewhere=msg.get_attr("IFLA_LINK_NETNSID") is not None,
        qdisc=msg.get_attr("IFLA_QDISC"),
    )


def _drop_strays(ipr: Any) -> None:
    """Forget the answers pyroute2 (0.9) filed under no request. A lookup's answer comes with
    the kernel's acknowledgement in a datagram of its own; pyroute2 returns once it has the
    answer, and the acknowledgement, arriving after, goes to a queue that only listeners of
    broadcasts read (this socket has none). Each is 36 bytes, but its buffer was a 256 KiB
    read shrunk in place: it kept a 4 KiB page mapped. The creating agent at 10,000
    expansions held 4,400 of them (17 MB) after 25 minutes, ~100 more every minute
    (/proc/PID/maps and /proc/PID/mem, 2026-12-07)."""
    root = getattr(getattr(getattr(ipr, "asyncore", None), "msg_queue", None), "root", None)
    while root is not None and not root.empty():
        root.get_nowait()
        root.task_done()


@contextmanager
def _netlink(action: str, what: str, tolerate: tuple[int, ...] = ()) -> Iterator[None]:
    """Turn a NetlinkError into "cannot <action> <what>: <reason>"; errnos in `tolerate` pass."""
    try:
        yield
    except NetlinkError as exc:
        if exc.code in tolerate:
            return
        reason = os.strerror(exc.code) if exc.code else str(exc)
        raise DriverError(f"cannot {action} {what}: {reason}") from exc


class _Netlink:
    """Thin layer: one method per rtnetlink request, errors as DriverError."""

    def __init__(self, netns: str | None = None, ipr: Any = None) -> None:
        self.owned = ipr is None
        if ipr is None:
            try:
                ipr = iproute_in(netns)
            except FileNotFoundError as exc:
                raise DriverError(f"network namespace {netns} does not exist") from exc
            except (OSError, NetlinkError) as exc:
                where = netns or "this namespace"
                raise DriverError(f"cannot open netlink in {where}: {exc}") from exc
        self.ipr = ipr
        self.netns = netns

    def _read(
        self, argv: list[str], keep: Callable[[Any], T], object_hook: tooljson.Hook | None = None
    ) -> list[T] | None:
        """`keep(item)` for each item of the JSON list an iproute2 tool (`ip`, `tc`) prints in
        our namespace, read as it prints it (tooljson.py). None only where the tool is
        missing: the caller then asks pyroute2, fine for a few interfaces. A tool that fails
        or hangs fails this read, and the next pass reads again: pyroute2 is no way round at
        scale (a peer with 3,334 expansions fell back to it while the kernel was busy and
        spent minutes and ~400 MB decoding 6,700 interfaces, 2026-12-07). A dump the kernel
        interrupted (interfaces changed meanwhile) is asked again at once."""
        argv = in_netns(argv, self.netns)
        why = ""
        for _ in range(TOOL_ATTEMPTS):
            try:
                return tooljson.read(argv, keep, timeout=TOOL_TIMEOUT_S, object_hook=object_hook)
            except FileNotFoundError:
                return None
            except tooljson.NoAnswer:
                why = f"no answer within {TOOL_TIMEOUT_S:g} s"
                break
            except tooljson.Unreadable as exc:
                why = f"it printed no JSON list ({exc})"
                break
            except tooljson.Failed as exc:
                why = text.clean(exc.reason)
        raise DriverError(f"cannot read the kernel's state with `{' '.join(argv)}`: {why}")

    def links(self, kind: str | None = None, others: Mapping[str, int] | None = None) -> list[Link]:
        """Every interface, or those of one `kind` (`ip` still walks every interface, but
        prints and we decode only those: 3,000 VXLAN devices among 6,000 interfaces, half the
        JSON). `others` as _links'."""
        if kind is not None and kind not in DUMP_KINDS:
            raise DriverError(f"refusing to list interfaces of kind {kind!r}")
        argv = ["ip", "-d", "-j", "link", "show", *(("type", kind) if kind else ())]
        listed = self._read(argv, _listed, object_hook=_kept)
        if listed is not None:
            return _links(listed, others)
        with _netlink("list", "interfaces"):
            links = [_parse(m) for m in self.ipr.get_links()]
        return [link for link in links if kind is None or link.kind == kind]

    def root_rates_by_name(self, links: list[Link]) -> dict[str, int]:
        """interface name -> rate (bytes/s) of each root qdisc that is our tbf, from `tc -j`
        (as links(): 3,000 qdiscs decoded by pyroute2 took 1.4 s of every pass). Where the
        dump of `links` says that no interface has a tbf at its root, nothing is asked: the
        qdisc dump of 20,000 interfaces takes 0.3 s, and most hosts limit no rate."""
        if all(link.qdisc is not None and link.qdisc != "tbf" for link in links):
            return {}
        found = self._read(["tc", "-j", "qdisc", "show"], _our_rate)
        if found is None:
            names = {link.index: link.name for link in links}
            return {names[i]: r for i, r in self.root_rates().items() if i in names}
        return dict(rate for rate in found if rate is not None)

    def link(self, name: str) -> Link | None:
        try:
            msgs = self.ipr.link("get", ifname=name)
            _drop_strays(self.ipr)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return None
            reason = os.strerror(exc.code) if exc.code else str(exc)
            raise DriverError(f"cannot look up {name}: {reason}") from exc
        return _parse(msgs[0]) if msgs else None

    def add(self, what: str, name: str, label: str | None = None, **kw: Any) -> None:
        with _netlink(f"create {what}", label or name):
            self.ipr.link("add", ifname=name, **kw)

    def set(self, link: Link, action: str, what: str | None = None, **kw: Any) -> None:
        with _netlink(action, what or link.name):
            self.ipr.link("set", index=link.index, **kw)

    def set_port(self, link: Link, **kw: Any) -> None:
        with _netlink("set bridge port flags of", link.name):
            self.ipr.link("set", index=link.index, kind="bridge_slave", **kw)

    def delete(self, link: Link) -> None:
        with _netlink("delete", link.name, tolerate=(errno.ENODEV,)):  # already gone: done
            self.ipr.link("del", index=link.index)

    def root_rates(self, index: int | None = None) -> dict[int, int]:
        """ifindex -> rate (bytes/s) of each root qdisc that is our tbf."""
        with _netlink("list", "qdiscs"):
            msgs = self.ipr.get_qdiscs(index=index) if index else self.ipr.get_qdiscs()
            key = (QDISC_HANDLE, TC_H_ROOT, "tbf")
            ours = [m for m in msgs if (m["handle"], m["parent"], m.get_attr("TCA_KIND")) == key]
            parms = {m["index"]: _attrs(m.get_attr("TCA_OPTIONS")) for m in ours}
            return {i: p.get("TCA_TBF_PARMS", {}).get("rate", 0) for i, p in parms.items()}

    def set_tbf(self, link: Link, rate: int, burst: int, limit: int) -> None:
        checks.integer(rate, 1, MAX_RATE_BYTES, "tbf rate")
        for value, what in ((burst, "tbf burst"), (limit, "tbf limit")):
            checks.integer(value, 1, 2**32 - 1, what)
        with _netlink(f"set rate limit {rate * 8 / 1e6:g} Mbit/s on", link.name):
            self.ipr.tc(
                "replace", "tbf", link.index, QDISC_HANDLE, rate=rate, burst=burst, limit=limit
            )

    def delete_qdisc(self, link: Link) -> None:
        with _netlink("remove rate limit from", link.name, tolerate=(errno.ENOENT, errno.EINVAL)):
            self.ipr.tc("del", index=link.index, handle=QDISC_HANDLE, parent=TC_H_ROOT)

    def close(self) -> None:
        if self.owned:
            self.ipr.close()


def _mark(mtu: int | None) -> str | None:
    return None if mtu is None else f"{MTU_MARK}{mtu}"
