"""Defence in depth at the writers (issue 13, finding 1): every value of an `ip -batch` line,
an nft script or a netlink/tc request is checked for its use where it is written; a newline,
a space or a ';' in any field raises DriverError and nothing is written."""

from __future__ import annotations

import dataclasses
import subprocess

import pytest

from intercloud.domain.hoststate import Attachment, Bridge, Patch, Vxlan
from intercloud.domain.plan import Step
from intercloud.drivers.dataplane.linux import bulk, ipbatch, netlink, nft
from intercloud.drivers.dataplane.linux import driver as linux
from intercloud.errors import DriverError

GOOD_VX = Vxlan("icv7", 7, "198.18.1.2", "198.18.2.2", "icbe1", isolated=True)
GOOD_BR = Bridge("icbe1", 1450)
GOOD_PATCH = Patch("icpe1", "icqe1", "icbe1", "tn-net1")
GOOD_ATT = Attachment("eth1", "icbe1")
POISON = ["x\nnetns add pwn", "x y", "x;id", 'x"', "x#", "x\\", "", "é"]
BAD_ADDR = POISON + ["198.18.2.0/24", "fe80::1%eth0", "0.0.0.0/0", "198.18.2.2 up"]


def _lines(obj) -> list:
    if isinstance(obj, Vxlan):
        return ipbatch.vxlan(obj, "intercloud:mtu=1450", True)
    if isinstance(obj, Bridge):
        return ipbatch.bridge(obj, "intercloud:mtu=1450")
    if isinstance(obj, Patch):
        return ipbatch.patch(obj)
    return ipbatch.attach(obj)


def _cases():
    for obj, fields in (
        (GOOD_VX, ("name", "master")),
        (GOOD_BR, ("name",)),
        (GOOD_PATCH, ("name", "peer", "master", "peer_master")),
        (GOOD_ATT, ("interface", "master")),
    ):
        for f in fields:
            for bad in POISON:
                yield obj, f, bad
    for f in ("local", "remote"):
        for bad in BAD_ADDR:
            yield GOOD_VX, f, bad
    for f, bad in (
        ("vni", "7\nnetns add pwn"),
        ("vni", 0),
        ("vni", 2**24),
        ("vni", True),
        ("port", "4789 x"),
        ("port", 70000),
        ("mtu", "1450;"),
        ("mtu", 10**6),
    ):
        yield GOOD_VX, f, bad  # fmt: skip
    yield GOOD_BR, "mtu", "1450\nnetns add pwn"


@pytest.mark.parametrize("obj,field,bad", list(_cases()), ids=repr)
def test_ipbatch_refuses_a_bad_value_in_any_field(obj, field, bad):
    assert all(line.isprintable() for _, line in _lines(obj))  # the good one is fine
    with pytest.raises(DriverError):
        _lines(dataclasses.replace(obj, **{field: bad}))


def test_ipbatch_refuses_a_bad_alias_and_a_multi_line_script(monkeypatch):
    with pytest.raises(DriverError):
        ipbatch.bridge(GOOD_BR, "intercloud:mtu=1450\nnetns add pwn")
    ran = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: ran.append(a))
    with pytest.raises(DriverError):
        ipbatch.run(["link set icv7 up", "link set icv7 up\nnetns add pwn"], None)
    assert ran == []  # nothing at all was run


def test_a_refused_value_leaves_the_batch_for_the_ordinary_step():
    """bulk.py: a step whose lines ipbatch refuses is not batched (its own step then fails
    with its own error, through netlink, where no text is parsed)."""
    dp = linux.LinuxDataplane.__new__(linux.LinuxDataplane)
    lookup = {}.get  # as observed: the host has nothing yet
    bad = dataclasses.replace(GOOD_VX, remote="198.18.0.9\nnetns add pwn")
    assert bulk.lines(Step("ensure_vxlan", bad), lookup, {"icbe1"}) is None
    assert bulk.lines(Step("ensure_vxlan", GOOD_VX), lookup, {"icbe1"}) is not None
    with pytest.raises(DriverError, match="not a plain IP address"):
        dp.ensure_vxlan(bad)  # before any netlink request


@pytest.mark.parametrize("bad", POISON + ["icv7\n"])
def test_nft_refuses_a_bad_interface_name(bad):
    assert "icv7" in nft.render("ic", {"icv7": 1400})
    with pytest.raises(DriverError):
        nft.render("ic", {bad: 1400})
    with pytest.raises(DriverError):
        nft.render_relay("ic", [("icv7", bad)])


@pytest.mark.parametrize("bad", ["ic\n", "ic x", "ic;", "IC", ""])
def test_nft_refuses_a_bad_table_prefix(bad):
    with pytest.raises(DriverError):
        nft.render(bad, {"icv7": 1400})


@pytest.mark.parametrize("bad", [1400.5, "1400", True, 10, 70000])
def test_nft_refuses_a_bad_mss(bad):
    with pytest.raises(DriverError):
        nft.render("ic", {"icv7": bad})


@pytest.mark.parametrize("rate,burst,limit", [(0, 1, 1), ("1000", 1, 1), (1, 2**32, 1),
                                              (1, 1, -1), (1.5, 1, 1), (True, 1, 1)])  # fmt: skip
def test_tc_refuses_values_that_are_not_integers_in_range(rate, burst, limit):
    class Ipr:
        calls: list = []

        def tc(self, *args, **kw):
            self.calls.append((args, kw))

    nl = netlink._Netlink(ipr=Ipr())
    link = netlink.Link(5, "icv7", "vxlan", 1450, 0, True, None, {}, {}, 0, False)
    nl.set_tbf(link, 125000, 65536, 100000)
    assert len(Ipr.calls) == 1
    with pytest.raises(DriverError):
        nl.set_tbf(link, rate, burst, limit)
    assert len(Ipr.calls) == 1
