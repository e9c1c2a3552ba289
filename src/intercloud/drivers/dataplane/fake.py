"""An in-memory data plane for unit tests: keeps state and fails like the Linux driver.

Like the kernel it refuses to enslave to a missing bridge (or a bridge into a bridge), to patch
into a missing operator bridge, to attach a missing interface, and to create a second VXLAN
device with the same VNI and port ("File exists"). It follows the Linux driver's observation
rule: an MTU is reported only where ensure_* set one (None otherwise). A VXLAN device's rate
limit lives on its link (`rate_mbit`, changed in place like the Linux qdisc); MSS clamps live in
`clamps`, one table per prefix (interface -> MSS), as the Linux driver's nftables table.

Every mutating verb is appended to `calls` as "<verb> <target>" (the form of Step.describe),
before it runs, so a test can assert that a converged pass made no call; observe() and
interface_kind() are reads and only count in `observations`. `fail(verb)` makes the next call of
that verb raise DriverError, for testing the caller's error handling.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from intercloud.domain.hoststate import (
    MIN_MSS,
    Attachment,
    Bridge,
    HostState,
    Observed,
    Patch,
    Vxlan,
)
from intercloud.drivers.dataplane.base import Dataplane
from intercloud.errors import DriverError

KINDS = ("bridge", "veth", "vxlan", "other")


@dataclass
class FakeLink:
    name: str
    kind: str
    foreign: bool = False  # made by the test (the operator), not by a driver verb
    up: bool = True
    mtu: int | None = None  # as set by ensure_* (the Linux driver's MTU mark)
    master: str | None = None
    isolated: bool = False  # bridge-port flag, reset when the port leaves its bridge
    peer: str | None = None  # veth
    vni: int = 0
    local: str = ""
    remote: str = ""
    port: int = 0
    rate_mbit: float | None = None  # vxlan: the rate limit (the Linux driver's tbf)


def _why(code: int) -> str:
    return os.strerror(code)


class FakeDataplane(Dataplane):
    clamps_mss = True

    def __init__(self, prefix: str = "ic") -> None:
        super().__init__(prefix)
        self.links: dict[str, FakeLink] = {}
        self.calls: list[str] = []
        self.observations = 0
        self.closed = False
        self.clamps: dict[str, dict[str, int]] = {}  # prefix -> interface -> MSS
        self.no_forward: dict[str, set[tuple[str, str]]] = {}  # prefix -> (in, out) pairs
        self._failures: dict[str, str] = {}

    # -- test helpers ------------------------------------------------------------------------

    def add_foreign(self, name: str, kind: str = "other", master: str | None = None) -> FakeLink:
        """Pre-create an operator interface (kind 'bridge', 'veth', 'vxlan' or 'other')."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if name in self.links:
            raise ValueError(f"{name} already exists")
        link = FakeLink(name, kind, foreign=True)
        self.links[name] = link
        if master is not None:
            self._enslave(link, self._bridge(master, name))
        return link

    def fail(self, verb: str, message: str = "injected failure") -> None:
        """Make the next call of `verb` raise DriverError(message)."""
        self._failures[verb] = message

    def reset_calls(self) -> None:
        self.calls.clear()

    # -- reads -------------------------------------------------------------------------------

    def observe(self, foreign: Iterable[str] = ()) -> Observed:
        self.observations += 1
        self._check_failure("observe")
        prefix = self.prefix
        state = HostState()
        n = len(prefix)

        def ours(link: FakeLink, tag: str, kind: str) -> bool:
            return link.name[:n] == prefix and link.name[n : n + 1] == tag and link.kind == kind

        for link in self.links.values():
            if ours(link, "b", "bridge"):
                state.add(Bridge(link.name, link.mtu))
            elif ours(link, "v", "vxlan"):
                state.add(self._as_vxlan(link))
            elif ours(link, "p", "veth"):
                peer = self.links.get(link.peer or "")
                state.add(
                    Patch(
                        name=link.name,
                        peer=peer.name if peer else "",
                        master=link.master or "",
                        peer_master=(peer.master or "") if peer else "",
                    )
                )
        foreign = list(foreign)
        for name in foreign:
            found = self.links.get(name)
            if found is not None and found.master in state.bridges:
                state.add(Attachment(name, found.master))
        state.observed_clamps(self.observe_mss_clamp())
        state.no_forward = self.observe_no_forward()
        return Observed(state, self.kinds(foreign))

    @staticmethod
    def _as_vxlan(link: FakeLink) -> Vxlan:
        return Vxlan(
            name=link.name,
            vni=link.vni,
            local=link.local,
            remote=link.remote,
            master=link.master or "",
            port=link.port,
            mtu=link.mtu,
            isolated=link.isolated,
            rate_mbit=link.rate_mbit,
        )

    def observe_no_forward(self) -> set[tuple[str, str]]:
        return set(self.no_forward.get(self.prefix, set()))

    def observe_mss_clamp(self) -> dict[str, int]:
        return dict(self.clamps.get(self.prefix, {}))

    def interface_kind(self, name: str) -> str | None:
        link = self.links.get(name)
        return link.kind if link else None

    # -- verbs -------------------------------------------------------------------------------

    def ensure_bridge(self, bridge: Bridge) -> None:
        self._record("ensure_bridge", bridge.name)
        link = self._replace_if(bridge.name, lambda cur: cur.kind != "bridge")
        if link is None:
            link = self._create(FakeLink(bridge.name, "bridge"))
        link.mtu = bridge.mtu
        link.up = True

    def ensure_vxlan(self, vxlan: Vxlan) -> None:
        self._record("ensure_vxlan", vxlan.name)
        master = self._bridge(vxlan.master, f"vxlan {vxlan.name}")
        tunnel = (vxlan.vni, vxlan.local, vxlan.remote, vxlan.port)
        link = self._replace_if(
            vxlan.name,
            lambda cur: cur.kind != "vxlan" or (cur.vni, cur.local, cur.remote, cur.port) != tunnel,
        )
        if link is None:
            for other in self.links.values():
                if other.kind == "vxlan" and (other.vni, other.port) == (vxlan.vni, vxlan.port):
                    raise DriverError(f"cannot create vxlan {vxlan.name}: {_why(errno.EEXIST)}")
            link = self._create(
                FakeLink(
                    vxlan.name,
                    "vxlan",
                    up=False,
                    vni=vxlan.vni,
                    local=vxlan.local,
                    remote=vxlan.remote,
                    port=vxlan.port,
                )
            )
        link.mtu = vxlan.mtu
        self._enslave(link, master)
        link.isolated = vxlan.isolated
        link.rate_mbit = vxlan.rate_mbit
        link.up = True

    def ensure_patch(self, patch: Patch) -> None:
        self._record("ensure_patch", patch.name)
        master = self._bridge(patch.master, f"patch {patch.name}")
        peer_master = self.links.get(patch.peer_master)
        if peer_master is None:
            raise DriverError(
                f"cannot patch {patch.name} into {patch.peer_master}: no such interface"
            )
        link = self._replace_if(
            patch.name, lambda cur: cur.kind != "veth" or cur.peer != patch.peer
        )
        if link is None:
            if patch.peer in self.links:  # a leftover end without its partner
                self._delete(patch.peer)
            link = self._create(FakeLink(patch.name, "veth", up=False, peer=patch.peer))
            self._create(FakeLink(patch.peer, "veth", up=False, peer=patch.name))
        peer = self.links[patch.peer]
        self._enslave(link, master)
        self._enslave(peer, peer_master)
        link.up = peer.up = True

    def attach(self, attachment: Attachment) -> None:
        self._record("attach", f"{attachment.interface}->{attachment.master}")
        master = self._bridge(attachment.master, attachment.interface)
        link = self.links.get(attachment.interface)
        if link is None:
            raise DriverError(
                f"cannot attach {attachment.interface} to {attachment.master}: no such interface"
            )
        self._enslave(link, master)
        link.up = True

    def detach(self, interface: str) -> None:
        self._record("detach", interface)
        link = self.links.get(interface)
        if link is not None:
            self._release(link)

    def remove_link(self, name: str) -> None:
        self._record("remove_link", name)
        if name in self.links:
            self._delete(name)

    def ensure_mss_clamp(self, rules: Mapping[str, int]) -> None:
        wanted = dict(sorted(rules.items()))
        self._record(
            "ensure_mss_clamp", ",".join(f"{k}={v}" for k, v in wanted.items()) or "(none)"
        )
        for name, mss in wanted.items():  # what the Linux driver refuses
            if isinstance(mss, bool) or not isinstance(mss, int) or not MIN_MSS <= mss <= 65535:
                raise DriverError(f"cannot clamp MSS on {name} to {mss!r}: not in 88..65535")
        if wanted:
            self.clamps[self.prefix] = wanted
        else:
            self.clamps.pop(self.prefix, None)

    def remove_mss_clamp(self) -> None:
        self._record("remove_mss_clamp", self.prefix)
        self.clamps.pop(self.prefix, None)

    def flush_learned(self, ports: Sequence[str]) -> None:
        for port in ports:
            self._record("flush_learned", port)

    def ensure_no_forward(self, pairs: Iterable[tuple[str, str]]) -> None:
        wanted = set(pairs)
        self._record("ensure_no_forward", ",".join(f"{i}>{o}" for i, o in sorted(wanted)) or "-")
        if wanted:
            self.no_forward[self.prefix] = wanted
        else:
            self.no_forward.pop(self.prefix, None)

    def remove_no_forward(self) -> None:
        self._record("remove_no_forward", self.prefix)
        self.no_forward.pop(self.prefix, None)

    def close(self) -> None:
        self.closed = True

    # -- the "kernel" ------------------------------------------------------------------------

    def _record(self, verb: str, target: str) -> None:
        self.calls.append(f"{verb} {target}")
        self._check_failure(verb)

    def _check_failure(self, verb: str) -> None:
        message = self._failures.pop(verb, None)
        if message is not None:
            raise DriverError(message)

    def _create(self, link: FakeLink) -> FakeLink:
        if link.name in self.links:
            raise DriverError(f"cannot create {link.kind} {link.name}: {_why(errno.EEXIST)}")
        self.links[link.name] = link
        return link

    def _replace_if(self, name: str, wrong: Callable[[FakeLink], bool]) -> FakeLink | None:
        link = self.links.get(name)
        if link is not None and wrong(link):
            self._delete(name)
            return None
        return link

    def _delete(self, name: str) -> None:
        link = self.links.pop(name)
        if link.kind == "veth" and link.peer in self.links:
            self.links.pop(link.peer)
        if link.kind == "bridge":
            for port in self.links.values():
                if port.master == name:
                    self._release(port)

    def _bridge(self, name: str, user: str) -> FakeLink:
        link = self.links.get(name)
        if link is None or link.kind != "bridge":
            why = "no such interface" if link is None else f"it is a {link.kind}"
            raise DriverError(f"cannot enslave {user} to bridge {name}: {why}")
        return link

    def _enslave(self, link: FakeLink, master: FakeLink) -> None:
        if link.master == master.name:
            return
        if master.kind != "bridge":
            raise DriverError(
                f"cannot enslave {link.name} to {master.name}: {_why(errno.EOPNOTSUPP)}"
            )
        if link.kind == "bridge":  # the kernel refuses a bridge as a bridge port
            raise DriverError(f"cannot enslave {link.name} to {master.name}: {_why(errno.ELOOP)}")
        self._release(link)
        link.master = master.name

    @staticmethod
    def _release(link: FakeLink) -> None:
        link.master = None
        link.isolated = False
