"""What the Linux driver knows of the interfaces while a plan applies (dataplane/linux/links.py):
after a batch that made interfaces of some kinds only, those kinds are asked again and the
others kept; a batch that may have changed any kind asks for every interface."""

from __future__ import annotations

import pytest

from intercloud.domain.hoststate import Attachment, Bridge, Patch, Vxlan
from intercloud.domain.plan import Step
from intercloud.drivers.dataplane.linux import bulk
from intercloud.drivers.dataplane.linux.links import KnownLinks
from intercloud.drivers.dataplane.linux.netlink import Link, _Netlink
from intercloud.errors import DriverError


def link(index: int, name: str, kind: str | None, master: int = 0, mtu: int = 1500) -> Link:
    return Link(index, name, kind, mtu, master, True, None, {}, {}, 0, False)


class FakeNetlink:
    """The kernel as a dict; records each dump and the names it was told of."""

    def __init__(self, links: list[Link]) -> None:
        self.kernel = {x.name: x for x in links}
        self.dumps: list[str | None] = []
        self.others: list[dict[str, int]] = []

    def links(self, kind=None, others=None):
        self.dumps.append(kind)
        self.others.append(dict(others or {}))
        return [x for x in self.kernel.values() if kind is None or x.kind == kind]

    def link(self, name):
        return self.kernel.get(name)


def test_a_refresh_of_one_kind_replaces_that_kind_and_keeps_the_others():
    nl = FakeNetlink([link(1, "tn0", "bridge"), link(2, "icv1", "vxlan", 1)])
    known = KnownLinks(nl)  # type: ignore[arg-type]
    known.refresh()
    known.trusting = True
    # the batch: a new tunnel, one gone, and a bridge changed by someone (not asked again)
    nl.kernel["icv2"] = link(3, "icv2", "vxlan", 1)
    del nl.kernel["icv1"]
    nl.kernel["tn0"] = link(1, "tn0", "bridge", mtu=1400)
    known.refresh_kinds({"vxlan"})
    assert nl.dumps == [None, "vxlan"]
    assert nl.others[-1] == {"tn0": 1, "icv1": 2}  # masters named in the dump resolve
    assert known.lookup("icv2") == nl.kernel["icv2"]
    assert known.lookup("icv1") is None
    assert known.lookup("tn0").mtu == 1500  # kept as known (the module says why it may)


def test_an_interface_we_changed_is_still_asked_after_a_refresh_of_another_kind():
    nl = FakeNetlink([link(1, "tn0", "bridge"), link(2, "icv1", "vxlan", 1)])
    known = KnownLinks(nl)  # type: ignore[arg-type]
    known.refresh()
    known.trusting = True
    known.changing("tn0")
    nl.kernel["tn0"] = link(1, "tn0", "bridge", mtu=1400)
    known.refresh_kinds({"vxlan"})
    assert known.lookup("tn0").mtu == 1400


def test_before_any_dump_a_refresh_of_kinds_takes_a_whole_one():
    nl = FakeNetlink([link(1, "tn0", "bridge")])
    known = KnownLinks(nl)  # type: ignore[arg-type]
    known.refresh_kinds({"vxlan"})
    assert nl.dumps == [None] and known.observed


def test_the_kinds_a_batch_made():
    vx = Step("ensure_vxlan", Vxlan("icv1", 1, "198.18.0.1", "198.18.0.2", "tn0"))
    br = Step("ensure_bridge", Bridge("icbe1"))
    patch = Step("ensure_patch", Patch("icpe1", "icqe1", "icbe1", "opbr"))
    attach = Step("attach", Attachment("opv0", "icbe1"))
    assert bulk.kinds([vx, vx]) == {"vxlan"}
    assert bulk.kinds([br, vx, patch]) == {"bridge", "vxlan", "veth"}
    assert bulk.kinds([vx, attach]) is None  # an attachment may change any kind


def test_a_dump_of_a_kind_the_driver_does_not_make_is_refused():
    nl = _Netlink.__new__(_Netlink)  # no socket: refused before anything runs
    with pytest.raises(DriverError, match="kind"):
        nl.links("vxlan; reboot")
