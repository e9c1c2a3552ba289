"""Netlink sockets in another network namespace (drivers/nsexec.netlink_socket), against the
real kernel: made by a thread that enters the namespace, so the process never forks (pyroute2's
way forked it, and the copy ran its parent's signal handlers) and the caller's threads stay
where they are; the socket sees that namespace's interfaces and no other's. The Linux driver
and its change events, given a namespace, make theirs that way."""

from __future__ import annotations

import os
import select
import socket
import subprocess

import pytest

from intercloud.drivers.dataplane.linux import LinuxDataplane
from intercloud.drivers.dataplane.linux.netlink import _Netlink
from intercloud.drivers.dataplane.linux.watch import NETLINK_ROUTE, RTMGRP_LINK, drain, subscribed
from intercloud.drivers.nsexec import netlink_socket
from intercloud.errors import DriverError

pytestmark = pytest.mark.integration


def no_fork(monkeypatch) -> str:
    monkeypatch.setattr(os, "fork", lambda: pytest.fail("a process was forked"))
    return os.readlink("/proc/thread-self/ns/net")


def events(sock: socket.socket) -> bytes:
    """What the socket has received within a second (the datagrams joined)."""
    got: list[bytes] = []
    while select.select([sock], [], [], 1.0)[0]:
        drain(sock, got.append)
    return b"".join(got)


@pytest.mark.parametrize("by_path", [False, True])
def test_the_socket_sees_its_namespace_only_and_nothing_forks(namespaces, monkeypatch, by_path):
    ns, other = namespaces("nl"), namespaces("other")
    here = no_fork(monkeypatch)
    sock = subscribed(f"/run/netns/{ns}" if by_path else ns, NETLINK_ROUTE, RTMGRP_LINK)
    try:
        assert os.readlink("/proc/thread-self/ns/net") == here
        subprocess.run(["ip", "-n", other, "link", "add", "icbother", "type", "bridge"], check=True)
        subprocess.run(["ip", "-n", ns, "link", "add", "icbmine", "type", "bridge"], check=True)
        seen = events(sock)
        assert b"icbmine" in seen
        assert b"icbother" not in seen
    finally:
        sock.close()


def test_a_missing_namespace_is_an_error_that_names_it(monkeypatch):
    no_fork(monkeypatch)
    with pytest.raises(FileNotFoundError):
        netlink_socket("ictest-none-such", NETLINK_ROUTE)
    with pytest.raises(DriverError, match="ictest-none-such does not exist"):
        _Netlink("ictest-none-such")


def test_the_driver_given_a_namespace_works_there_without_forking(namespaces, monkeypatch):
    ns = namespaces("drv")
    here = no_fork(monkeypatch)
    dp = LinuxDataplane("ic", ns)
    try:
        changes = dp._seen.changes  # its change events, subscribed in the namespace
        changes.reading()
        assert changes.quiet()
        dp._nl.ipr.link("add", ifname="icbnl", kind="bridge")
        assert os.readlink("/proc/thread-self/ns/net") == here
        listed = subprocess.run(
            ["ip", "-n", ns, "-o", "link", "show", "icbnl"], capture_output=True, text=True
        )
        assert listed.returncode == 0  # made there, not here
        assert subprocess.run(["ip", "link", "show", "icbnl"], capture_output=True).returncode
        assert not changes.quiet()  # the change was heard
    finally:
        dp.close()
