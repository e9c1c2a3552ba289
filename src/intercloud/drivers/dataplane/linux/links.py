"""The interfaces as the Linux driver last saw them, kept up to date by its own changes.

While a plan is applied (`trusting`), its steps look interfaces up here instead of asking the
kernel (1,000 networks: ~10,000 lookups a pass). An interface changed by us since is asked
again; a change made by someone else in between makes a step fail, and the next pass observes
again. Outside a plan every lookup asks the kernel."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from intercloud.drivers.dataplane.linux.netlink import Link, _Netlink
from intercloud.errors import DriverError


class KnownLinks:
    def __init__(self, nl: _Netlink) -> None:
        self.nl = nl
        self.trusting = False
        self._known: dict[str, Link] | None = None
        self._unsure: set[str] = set()  # changed by us since: ask the kernel

    @property
    def observed(self) -> bool:
        """Whether a dump was taken (the bulk path needs one)."""
        return self._known is not None

    def refresh(self) -> list[Link]:
        """Every interface as the kernel has it now; trusted from here on (while trusting).
        The last dump is let go first: not two of them at the read's peak."""
        self._known = None
        links = self.nl.links()
        self._known = {link.name: link for link in links}
        self._unsure = set()
        return links

    def refresh_kinds(self, kinds: Iterable[str]) -> None:
        """After a batch that made or changed only interfaces of `kinds`: those asked again,
        one dump per kind, the others kept as known. (A bridge's MTU may follow a port that
        joined it: no later step of the same plan reads it, and the next pass observes.)"""
        if self._known is None:
            self.refresh()
            return
        wanted = set(kinds)
        others = {name: link.index for name, link in self._known.items()}
        fresh = [link for kind in sorted(wanted) for link in self.nl.links(kind, others)]
        known = {name: link for name, link in self._known.items() if link.kind not in wanted}
        known.update((link.name, link) for link in fresh)
        self._known = known
        self._unsure -= {link.name for link in fresh}  # asked just now

    def lookup(self, name: str) -> Link | None:
        """While trusting: the interface as observed (and changed by us since); otherwise, or
        if we changed it, as the kernel says now."""
        if self._known is None or not self.trusting:
            return self.nl.link(name)
        if name in self._unsure:
            link = self.nl.link(name)
            self._unsure.discard(name)
            if link is None:
                self._known.pop(name, None)
            else:
                self._known[name] = link
            return link
        return self._known.get(name)

    def as_known(self, names: Iterable[str]) -> dict[str, Link]:
        """The interfaces of `names` that exist, as last seen (even outside a plan: for what
        does not change while it stands, such as kind and master); one we changed since, or
        did not see, asked."""
        found = {}
        for name in names:
            known = self._known.get(name) if self._known is not None else None
            link = known if known is not None and name not in self._unsure else self.nl.link(name)
            if link is not None:
                found[name] = link
        return found

    def must(self, name: str) -> Link:
        """The interface as it is now (asked), after a change of ours."""
        link = self.nl.link(name)
        if link is None:
            if self._known is not None:
                self._known.pop(name, None)
            raise DriverError(f"{name} vanished right after it was created")
        if self._known is not None:
            self._known[name] = link
            self._unsure.discard(name)
        return link

    def changing(self, name: str) -> None:
        """We are about to change `name`: ask the kernel next time."""
        self._unsure.add(name)

    def set(self, link: Link, action: str, what: str | None = None, **kw: Any) -> None:
        self.changing(link.name)
        self.nl.set(link, action, what, **kw)

    def set_port(self, link: Link, **kw: Any) -> None:
        self.changing(link.name)
        self.nl.set_port(link, **kw)

    def delete(self, link: Link) -> None:
        self.nl.delete(link)
        if self._known is not None:
            self._known.pop(link.name, None)
