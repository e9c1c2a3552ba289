"""The Linux driver's reads through `ip -j` / `tc -j` (drivers/dataplane/linux/netlink.py):
pyroute2 only where the tool is missing; a tool that fails or hangs fails the read (the next
pass reads again), after asking an interrupted dump again. pyroute2's decoding of thousands of
interfaces took minutes and hundreds of MB in a peer that fell back to it."""

from __future__ import annotations

from typing import Any

import pytest

from intercloud.drivers.dataplane.linux import netlink, tooljson
from intercloud.errors import DriverError

LINKS = (
    b'[{"ifindex": 7, "ifname": "icb1", "flags": ["UP"], "mtu": 1500,'
    b' "linkinfo": {"info_kind": "bridge"}}]'
)


def link(name: str, qdisc: str | None, index: int = 7) -> netlink.Link:
    return netlink.Link(index, name, "vxlan", 1450, 0, True, None, {}, {}, 0, False, qdisc)


class NoPyroute2:
    """The driver's IPRoute: any call means the read went the slow way."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"pyroute2 asked: {name}")


def nl() -> netlink._Netlink:
    return netlink._Netlink(None, ipr=NoPyroute2())


def answers(monkeypatch, *outcomes: Any) -> list[list[str]]:
    """The tool's run (tooljson.read) gives `outcomes` in turn: (returncode, stdout, stderr)
    or an exception."""
    calls: list[list[str]] = []
    todo = list(outcomes)

    def read(argv, keep, *, timeout, object_hook=None):
        calls.append(argv)
        got = todo.pop(0)
        if isinstance(got, BaseException):
            raise got
        code, out, err = got
        if code != 0:
            raise tooljson.Failed(err.decode())
        return [keep(item) for item in tooljson.items([out], object_hook)]

    monkeypatch.setattr(tooljson, "read", read)
    return calls


def test_an_interrupted_dump_is_asked_again(monkeypatch):
    calls = answers(
        monkeypatch, (1, b"", b"Dump was interrupted and may be inconsistent.\n"), (0, LINKS, b"")
    )
    (link,) = nl().links()
    assert (link.name, link.index, link.kind) == ("icb1", 7, "bridge")
    assert len(calls) == 2


def test_a_tool_that_keeps_failing_fails_the_read_with_its_message(monkeypatch):
    calls = answers(monkeypatch, *[(2, b"", b"RTNETLINK answers: Device or resource busy\n")] * 3)
    with pytest.raises(DriverError, match="Device or resource busy"):
        nl().links()
    assert len(calls) == netlink.TOOL_ATTEMPTS


def test_a_tool_that_hangs_fails_the_read_at_once(monkeypatch):
    calls = answers(monkeypatch, tooljson.NoAnswer("no answer within 60 s"))
    with pytest.raises(DriverError, match="no answer within 60 s"):
        nl().root_rates_by_name([link("icv1", "tbf")])
    assert len(calls) == 1


def test_only_a_missing_tool_goes_to_pyroute2(monkeypatch):
    answers(monkeypatch, FileNotFoundError("ip"))
    with pytest.raises(AssertionError, match="pyroute2 asked: get_links"):
        nl().links()


QDISCS = (
    b'[{"kind": "noqueue", "handle": "0:", "dev": "icv1", "root": true},'
    b' {"kind": "tbf", "handle": "1c1:", "dev": "icv2", "root": true,'
    b' "options": {"rate": 1250000}},'
    b' {"kind": "tbf", "handle": "5:", "dev": "icv3", "root": true, "options": {"rate": 9}}]'
)


def test_no_qdisc_dump_where_the_interfaces_dump_shows_no_tbf(monkeypatch):
    """The interfaces' dump names each one's root qdisc kind (IFLA_QDISC): without a tbf
    among them there is no rate of ours to read, and `tc` is not run (20,000 qdiscs: 0.3 s)."""
    calls = answers(monkeypatch)  # any run of a tool fails the test (nothing to pop)
    quiet = [link("icv1", "noqueue"), link("tn1", "noqueue", 8), link("eth0", "fq_codel", 9)]
    assert nl().root_rates_by_name(quiet) == {}
    assert calls == []


@pytest.mark.parametrize("qdisc", ["tbf", None])
def test_the_qdisc_dump_is_read_where_a_tbf_may_stand(monkeypatch, qdisc):
    """A tbf at some root, or an interface whose root qdisc the dump did not name: `tc` is
    asked, and only our tbf (handle 1c1:) gives a rate."""
    calls = answers(monkeypatch, (0, QDISCS, b""))
    links = [link("icv1", "noqueue"), link("icv2", qdisc, 8), link("icv3", "tbf", 9)]
    assert nl().root_rates_by_name(links) == {"icv2": 1250000}
    assert [argv[-3:] for argv in calls] == [["-j", "qdisc", "show"]]


def test_the_interfaces_dump_gives_each_root_qdisc_kind():
    raw = (
        b'[{"ifindex": 7, "ifname": "icv1", "flags": ["UP"], "mtu": 1450, "qdisc": "tbf",'
        b' "linkinfo": {"info_kind": "vxlan", "info_data": {"id": 5}}},'
        b' {"ifindex": 8, "ifname": "icb1", "mtu": 1500}]'
    )
    tbf, untold = netlink._links([netlink._listed(d) for d in tooljson.items([raw], netlink._kept)])
    assert (tbf.qdisc, untold.qdisc) == ("tbf", None)
