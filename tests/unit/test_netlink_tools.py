"""The Linux driver's reads through `ip -j` / `tc -j` (drivers/dataplane/linux/netlink.py):
pyroute2 only where the tool is missing; a tool that fails or hangs fails the read (the next
pass reads again), after asking an interrupted dump again. pyroute2's decoding of thousands of
interfaces took minutes and hundreds of MB in a peer that fell back to it."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from intercloud.drivers.dataplane.linux import netlink
from intercloud.errors import DriverError

LINKS = (
    b'[{"ifindex": 7, "ifname": "icb1", "flags": ["UP"], "mtu": 1500,'
    b' "linkinfo": {"info_kind": "bridge"}}]'
)


class NoPyroute2:
    """The driver's IPRoute: any call means the read went the slow way."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"pyroute2 asked: {name}")


def nl() -> netlink._Netlink:
    return netlink._Netlink(None, ipr=NoPyroute2())


def answers(monkeypatch, *outcomes: Any) -> list[list[str]]:
    """subprocess.run gives `outcomes` in turn: (returncode, stdout, stderr) or an exception."""
    calls: list[list[str]] = []
    todo = list(outcomes)

    def run(argv, **_kw):
        calls.append(argv)
        got = todo.pop(0)
        if isinstance(got, BaseException):
            raise got
        code, out, err = got
        return subprocess.CompletedProcess(argv, code, out, err)

    monkeypatch.setattr(netlink.subprocess, "run", run)
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
    calls = answers(monkeypatch, subprocess.TimeoutExpired(["ip"], 60))
    with pytest.raises(DriverError, match="no answer within 60 s"):
        nl().root_rates_by_name([])
    assert len(calls) == 1


def test_only_a_missing_tool_goes_to_pyroute2(monkeypatch):
    answers(monkeypatch, FileNotFoundError("ip"))
    with pytest.raises(AssertionError, match="pyroute2 asked: get_links"):
        nl().links()
