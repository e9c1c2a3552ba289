"""The Linux data plane: bridges, VXLAN devices and veth patches over rtnetlink (pyroute2).

Two layers. `_Netlink` maps one method to one netlink request and turns `NetlinkError` into a
`DriverError` that names the interface ("cannot create vxlan icv100: File exists").
`LinuxDataplane` above it holds the tolerant logic: create what is missing, change only what
differs, treat "already absent" as done.

MTU observation rule. The kernel cannot tell "MTU chosen by us" from "MTU the device got by
default" (a bridge also follows its ports' MTU unless one was set). So ensure_* records an MTU it
sets in the interface alias (`intercloud:mtu=<n>`, see `ip -d link`), and observe() reports:
- `mtu=None` when the alias carries no such mark (the desired MTU was None: nothing to enforce);
- the device's *actual* MTU when it does, so a drift (someone changed it) diffs non-empty and
  the reconciler sets it again.
ensure_* with `mtu=None` removes our mark (and leaves the current MTU as it is). This makes
`plan(desired, observe()) == []` after convergence for `mtu=None` and for any explicit MTU,
bridges and VXLAN devices alike.

Rate limits (Vxlan.rate_mbit) are a root `tbf` qdisc with our handle (1c1:) on the VXLAN
device; observe() reports the rate of that qdisc, None if the device has no qdisc of ours.
ensure_vxlan changes only the qdisc when only the rate differs. See tbf_params() for the burst.
TCP MSS clamps are one nftables table per agent, written through nft.py inside `netns`.

Modules: netlink.py (one request each; the dumps through tooljson.py, read as `ip` prints
them), links.py (what was observed, while a plan applies),
bulk.py + ipbatch.py (fresh devices in one `ip -batch`), nft.py (clamps, relay filter),
checks.py (values checked before they reach a command line).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from intercloud.domain.hoststate import Attachment, Bridge, Observed, Patch, Vxlan
from intercloud.domain.plan import Step
from intercloud.drivers.dataplane.base import Dataplane
from intercloud.drivers.dataplane.linux import bulk, checks, ipbatch, ipv6, nft, observation
from intercloud.drivers.dataplane.linux.links import KnownLinks
from intercloud.drivers.dataplane.linux.netlink import (
    _HAS_DF,
    MTU_MARK,
    Link,
    _mark,
    _Netlink,
    tbf_params,
)
from intercloud.drivers.dataplane.linux.watch import KernelChanges, LastObservation
from intercloud.errors import DriverError, IntercloudError

log = logging.getLogger("intercloud.dataplane")
# Fewer fresh devices than this go one netlink request at a time: the batch's checking dump
# of every interface (0.14 s at 3,000) would cost more than it saves.
BATCH_MIN_STEPS = 32


class LinuxDataplane(Dataplane):
    """Bridge + VXLAN + veth over netlink, in the current namespace or in `netns`.

    `ipr` hands in an open pyroute2 `IPRoute` (then close() leaves it open for its owner)."""

    clamps_mss = True

    def __init__(self, prefix: str, netns: str | None = None, *, ipr: Any = None) -> None:
        super().__init__(prefix)
        self.netns = netns
        self._nl = _Netlink(netns, ipr)
        self._links = KnownLinks(self._nl)  # what the last observe() saw (while applying)
        self._batched: set[str] = set()  # tunnels the running batch made (no qdisc yet)
        # the last full observation, valid while the kernel says nothing changed (watch.py)
        self._seen = LastObservation(KernelChanges(netns))

    # -- observation -------------------------------------------------------------------------

    def observe(self, foreign: Iterable[str] = ()) -> Observed:
        return self._seen.get(frozenset(foreign), self._read)

    def _read(self, foreign: Iterable[str]) -> Observed:
        """Every interface, qdisc and nft set of ours, from the kernel."""
        clamp = self.observe_mss_clamp()
        links = self._links.refresh()
        state, kinds = observation.read(
            self.prefix, links, self._nl.root_rates_by_name(links), foreign
        )
        state.observed_clamps(clamp)
        state.no_forward = self.observe_no_forward()
        # a tunnel port of ours that is down was set down behind the plan's back (a gateway
        # that stood down, then took over again): ensure_vxlan brings it up
        up = {link.name: link.up for link in links}
        down = frozenset(name for name in state.vxlans if not up.get(name, True))
        return Observed(state, kinds, down=down)

    def interface_kind(self, name: str) -> str | None:
        return observation.kind(self._lookup(name))

    # -- ensure verbs ------------------------------------------------------------------------

    def ensure_bridge(self, bridge: Bridge) -> None:
        link = self._replace_if(bridge.name, lambda cur: cur.kind != "bridge")
        if link is None:
            kw: dict[str, Any] = {"mtu": bridge.mtu} if bridge.mtu is not None else {}
            # STP off and no forward delay: ports forward as soon as they are enslaved. Made
            # up in the same request (1,000 networks: 1,000 requests fewer).
            self._nl.add(
                "bridge",
                bridge.name,
                kind="bridge",
                br_stp_state=0,
                br_forward_delay=0,
                state="up",
                **kw,
            )
            link = self._must(bridge.name)
        elif bridge.mtu is not None and link.mtu != bridge.mtu:
            self._set(link, f"set MTU {bridge.mtu} on", mtu=bridge.mtu)
        self._set_mark(link, bridge.mtu)
        self._up(link)

    def ensure_vxlan(self, vxlan: Vxlan) -> None:
        checks.vxlan(vxlan)
        master = self._bridge(vxlan.master, f"vxlan {vxlan.name}")
        link = self._replace_if(vxlan.name, lambda cur: not self._same_tunnel(cur, vxlan))
        fresh = link is None
        if link is None:
            six = ":" in vxlan.local or ":" in vxlan.remote
            kw: dict[str, Any] = {
                "vxlan_id": vxlan.vni,
                "vxlan_local6" if six else "vxlan_local": vxlan.local,
                "vxlan_group6" if six else "vxlan_group": vxlan.remote,
                "vxlan_port": vxlan.port,
                "vxlan_learning": 1,
            }
            if _HAS_DF:
                kw["vxlan_df"] = 0
            if vxlan.mtu is not None:
                kw["mtu"] = vxlan.mtu
            # Into its bridge in the same request; up only at the end, once isolated if asked,
            # with the MTU mark in that same last request (a fresh tunnel: 4 requests, not 7).
            self._nl.add("vxlan", vxlan.name, kind="vxlan", master=master.index, **kw)
            ipv6.disable([vxlan.name], self.netns)  # before it is up (ipv6.py says why)
            link = self._must(vxlan.name)
            if vxlan.isolated:
                self._set_port(link, isolated=1)
            self._set_rate(link, vxlan.rate_mbit, fresh=True)
            mark = _mark(vxlan.mtu)
            self._set(link, "set up", state="up", **({"ifalias": mark} if mark else {}))
            return
        elif vxlan.mtu is not None and link.mtu != vxlan.mtu:
            self._set(link, f"set MTU {vxlan.mtu} on", mtu=vxlan.mtu)
        self._set_mark(link, vxlan.mtu)
        link = self._enslave(link, master)
        if bool(link.slave.get("IFLA_BRPORT_ISOLATED", 0)) != vxlan.isolated:
            self._set_port(link, isolated=int(vxlan.isolated))
        self._set_rate(link, vxlan.rate_mbit, fresh or vxlan.name in self._batched)
        self._up(link)

    def ensure_patch(self, patch: Patch) -> None:
        master = self._bridge(patch.master, f"patch {patch.name}")
        peer_master = self._lookup(patch.peer_master)
        if peer_master is None:
            raise DriverError(
                f"cannot patch {patch.name} into {patch.peer_master}: no such interface"
            )
        peer = self._lookup(patch.peer)
        link = self._replace_if(
            patch.name,
            lambda cur: (
                cur.kind != "veth" or peer is None or cur.peer_elsewhere or cur.peer != peer.index
            ),
        )
        if link is None:
            stale = self._lookup(patch.peer)  # a leftover end without its partner
            if stale is not None:
                self._delete(stale)
            # One end into its bridge and up in the same request, the other in one more
            # (a fresh patch: 3 requests, not 7).
            label = f"{patch.name}/{patch.peer}"
            self._nl.add(
                "veth pair",
                patch.name,
                label,
                kind="veth",
                peer=patch.peer,
                master=master.index,
                state="up",
            )
            self._links.changing(patch.name)
            peer = self._must(patch.peer)
            what = f"{peer.name} to {peer_master.name}"
            self._set(peer, "enslave", what, master=peer_master.index, state="up")
            return
        assert peer is not None  # else _replace_if removed the link
        self._up(self._enslave(link, master))
        self._up(self._enslave(peer, peer_master))

    def ensure_veth(self, inside: str, outside: str, master: str) -> bool:
        """A veth pair: `inside` in our bridge `master`, `outside` up and in no bridge (for
        another switch to take, e.g. Open vSwitch). True if it was made now."""
        bridge = self._bridge(master, f"veth {inside}")
        peer = self._lookup(outside)
        link = self._replace_if(
            inside,
            lambda cur: cur.kind != "veth" or peer is None or cur.peer != peer.index,
        )
        if link is None:
            if peer is not None:
                self._delete(peer)  # a leftover end without its partner
            self._nl.add(
                "veth pair",
                inside,
                f"{inside}/{outside}",
                kind="veth",
                peer=outside,
                master=bridge.index,
                state="up",
            )
            self._links.changing(inside)
            self._up(self._must(outside))
            return True
        assert peer is not None  # else _replace_if removed the link
        self._up(self._enslave(link, bridge))
        self._up(peer)
        return False

    def attach(self, attachment: Attachment) -> None:
        master = self._bridge(attachment.master, attachment.interface)
        link = self._lookup(attachment.interface)
        if link is None:
            raise DriverError(
                f"cannot attach {attachment.interface} to {attachment.master}: no such interface"
            )
        self._up(self._enslave(link, master))

    def detach(self, interface: str) -> None:
        link = self._lookup(interface)
        if link is not None and link.master:
            self._set(link, "release", master=0)

    def remove_link(self, name: str) -> None:
        link = self._lookup(name)
        if link is not None:
            self._delete(link)

    def close(self) -> None:
        self._seen.changes.close()
        self._nl.close()

    # -- MSS clamping (nft.py, run inside our namespace) ---------------------------------------

    def observe_mss_clamp(self) -> dict[str, int]:
        try:
            return nft.observe_mss_clamp(self.prefix, self.netns)
        except nft.NftMissing:
            return {}  # without nft there is no table; ensuring one will say what is missing

    def ensure_mss_clamp(self, rules: Mapping[str, int]) -> None:
        nft.ensure_mss_clamp(self.prefix, rules, self.netns)

    def remove_mss_clamp(self) -> None:
        with suppress(nft.NftMissing):
            nft.remove_mss_clamp(self.prefix, self.netns)

    def flush_learned(self, ports: Sequence[str]) -> None:
        """Forget the MACs learned on bridge ports; given a bridge, on all of its ports. Names
        fit for a command line go in one `bridge -batch` (no interface changes: the last
        observation holds), or one `ip -batch` where that cannot (1,000 ports: 0.07 s, where
        one pyroute2 request each took 2.1 s); any other name the ordinary way."""
        plain: list[tuple[str, bool]] = []
        for name, link in sorted(self._links.as_known(set(ports)).items()):
            bridge = link.kind == "bridge"
            if not bridge and not link.master:
                continue  # no bridge learns on it
            if ipbatch.plain(name):
                plain.append((name, bridge))
            elif bridge:
                self._set(link, "forget the learned MACs of", kind="bridge", br_fdb_flush=True)
            else:
                self._set_port(link, flush=1)
        # best effort: what a batch missed ages out (5 min)
        if not ipbatch.run_bridge([ipbatch.forget_learned(*p) for p in plain], self.netns):
            ipbatch.run([ipbatch.flush_learned(*p) for p in plain], self.netns)

    def observe_no_forward(self) -> set[tuple[str, str]]:
        try:
            return nft.observe_no_forward(self.prefix, self.netns)
        except nft.NftMissing:
            return set()

    def ensure_no_forward(self, pairs: Iterable[tuple[str, str]]) -> None:
        nft.ensure_no_forward(self.prefix, pairs, self.netns)

    def remove_no_forward(self) -> None:
        with suppress(nft.NftMissing):
            nft.remove_no_forward(self.prefix, self.netns)

    # -- many steps at once (ipbatch.py) --------------------------------------------------------

    def apply(self, steps: Iterable[Step]) -> Iterator[tuple[Step, IntercloudError | None]]:
        """While applying a plan: runs of steps that make fresh devices go in one `ip -batch`.
        If ip did every line, those steps are done (but a rate-limited tunnel's qdisc, which
        its ordinary step adds); if not, each of them runs the ordinary way against one dump
        taken after the batch (it finds its device made, or makes it and reports its own
        error). Other steps, and everything outside applying(), go one netlink request at a
        time."""
        if not self._links.trusting or not self._links.observed:
            yield from super().apply(steps)
            return
        run: list[Step] = []
        lines: list[ipbatch.Line] = []
        bridges: set[str] = set()  # bridges the run makes: later steps may enslave to them
        removals: list[Step] = []  # a run of tunnels and patches to delete
        for step in steps:
            if self._deletable_together(step):
                yield from self._run_batch(run, lines)
                run, lines, bridges = [], [], set()
                removals.append(step)
                continue
            yield from self._delete_together(removals)
            removals = []
            more = bulk.lines(step, self._lookup, bridges)
            if more is not None:
                run.append(step)
                lines += more
                continue
            yield from self._run_batch(run, lines)
            run, lines, bridges = [], [], set()
            yield from super().apply([step])
        yield from self._delete_together(removals)
        yield from self._run_batch(run, lines)

    def _deletable_together(self, step: Step) -> bool:
        """A removal of one of our tunnels or patches that exists (bridges go one by one)."""
        if step.verb != "remove_link" or not isinstance(step.obj, str):
            return False
        link = self._lookup(step.obj)
        return ipbatch.plain(step.obj) and link is not None and link.kind in ("vxlan", "veth")

    def _delete_together(self, run: list[Step]) -> Iterator[tuple[Step, IntercloudError | None]]:
        """Many devices deleted in one request (ipbatch.delete_together); then each step the
        ordinary way, which finds its device gone or deletes it and reports its own error."""
        group = ipbatch.free_group(self.netns) if len(run) >= BATCH_MIN_STEPS else None
        if group is not None:
            names = [str(s.obj) for s in run]
            failed = ipbatch.run(ipbatch.delete_together(names, group), self.netns)
            if failed:
                log.debug("ip -batch (%d deletions) reported: %s", len(run), failed.strip()[:2000])
            self._links.refresh()
        yield from super().apply(run)

    def _run_batch(
        self, run: list[Step], lines: list[ipbatch.Line]
    ) -> Iterator[tuple[Step, IntercloudError | None]]:
        trusted = False
        if len(run) >= BATCH_MIN_STEPS:
            tunnels = {s.obj.name for s in run if isinstance(s.obj, Vxlan)}
            made, up = ipbatch.split_up(lines)
            failed = ipbatch.run(made, self.netns)
            ipv6.disable(sorted(tunnels), self.netns)  # made, not up yet (ipv6.py says why)
            failed += ipbatch.run(up, self.netns)
            if failed:
                log.debug("ip -batch (%d steps) reported: %s", len(run), failed.strip()[:2000])
                kinds = bulk.kinds(run)
                if kinds is None:
                    self._links.refresh()
                else:  # only the kinds the batch made asked again (3,000 tunnels: half the JSON)
                    self._links.refresh_kinds(kinds)
            else:
                # ip did every line: a step whose lines are all of it is done, and what the
                # batch touched is asked by name if a later step looks it up. (Checking 3,000
                # tunnels against a dump of them took 0.5 s: a quarter of the batch's own time.)
                trusted = True
                for step in run:
                    for name in bulk.touched(step):
                        self._links.changing(name)
            self._batched = tunnels
        try:
            for step in run:
                if trusted and bulk.whole(step):
                    yield step, None
                else:
                    yield from super().apply([step])
        finally:
            self._batched = set()

    # -- helpers -----------------------------------------------------------------------------

    @contextmanager
    def applying(self) -> Iterator[None]:
        self._links.trusting = True
        try:
            yield
        finally:
            self._links.trusting = False

    def _lookup(self, name: str) -> Link | None:
        return self._links.lookup(name)

    def _must(self, name: str) -> Link:
        return self._links.must(name)

    def _set(self, link: Link, action: str, what: str | None = None, **kw: Any) -> None:
        self._links.set(link, action, what, **kw)

    def _set_port(self, link: Link, **kw: Any) -> None:
        self._links.set_port(link, **kw)

    def _delete(self, link: Link) -> None:
        self._links.delete(link)

    def _bridge(self, name: str, user: str) -> Link:
        link = self._lookup(name)
        if link is None or link.kind != "bridge":
            why = "no such interface" if link is None else f"it is a {link.kind or 'device'}"
            raise DriverError(f"cannot enslave {user} to bridge {name}: {why}")
        return link

    def _replace_if(self, name: str, wrong: Callable[[Link], bool]) -> Link | None:
        """The interface `name`, after deleting it if `wrong(link)` (then None)."""
        link = self._lookup(name)
        if link is not None and wrong(link):
            self._delete(link)
            return None
        return link

    @staticmethod
    def _same_tunnel(link: Link, vxlan: Vxlan) -> bool:
        """Can `link` stay as the device for `vxlan`? (What only a new device can change.)"""
        if link.kind != "vxlan":
            return False
        seen = observation.vxlan(link, vxlan.master)
        learning = link.data.get("IFLA_VXLAN_LEARNING", 1)
        df = link.data.get("IFLA_VXLAN_DF", 0)
        tunnel = (seen.vni, seen.local, seen.remote, seen.port, learning, df)
        return tunnel == (vxlan.vni, vxlan.local, vxlan.remote, vxlan.port, 1, 0)

    def _enslave(self, link: Link, master: Link) -> Link:
        if link.master == master.index:
            return link
        self._set(link, "enslave", f"{link.name} to {master.name}", master=master.index)
        return self._must(link.name)

    def _set_mark(self, link: Link, mtu: int | None) -> None:
        want = _mark(mtu)
        ours = (link.alias or "").startswith(MTU_MARK)
        if want is not None and link.alias != want:
            self._set(link, "record MTU on", ifalias=want)
        elif want is None and ours:
            self._set(link, "clear MTU record on", ifalias="")

    def _set_rate(self, link: Link, rate_mbit: float | None, fresh: bool = False) -> None:
        """Our tbf with this rate at the root of `link`, or none of ours (rate None).
        `fresh`: the device was just created, so it has no qdisc of ours; this spares a dump
        of every qdisc on the host (1,000 tunnels: 1,000 dumps of 1,000)."""
        current = None if fresh else self._nl.root_rates(link.index).get(link.index)
        if rate_mbit is None:
            if current is not None:
                self._nl.delete_qdisc(link)
            return
        rate, burst, limit = tbf_params(rate_mbit)
        if current != rate:
            self._nl.set_tbf(link, rate, burst, limit)

    def _up(self, link: Link) -> None:
        if not link.up:
            self._set(link, "set up", state="up")
