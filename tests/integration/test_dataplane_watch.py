"""The Linux driver reads the kernel again only when the kernel says something changed
(drivers/dataplane/linux/watch.py), against the real kernel in a namespace of the test's own:
a converged pass with nothing changed reads nothing, and every change made behind its back
(interface deleted, set down, port flag, qdisc, nft table) is seen by the next observe."""

from __future__ import annotations

import os
import subprocess

import pytest

from intercloud.domain.hoststate import Bridge, HostState, Vxlan
from intercloud.domain.plan import plan
from intercloud.drivers.dataplane.linux import LinuxDataplane
from intercloud.drivers.dataplane.linux import watch as watch_mod

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

VX = Vxlan(
    "icv100", 100, "198.18.0.1", "198.18.0.2", "icbe1", isolated=True, mss=1360, rate_mbit=50
)

NFT = ("ip", "netns", "exec", "{ns}", "nft")


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


def desired() -> HostState:
    s = HostState()
    s.add(Bridge("icbe1"))
    s.add(VX)
    return s


@pytest.fixture
def dp(namespaces):
    ns = namespaces("gw")
    driver = LinuxDataplane("ic", netns=ns)
    reads: list[int] = []
    real = driver._read

    def counted(foreign):
        reads.append(1)
        return real(foreign)

    driver._read = counted  # type: ignore[method-assign]
    try:
        assert driver._seen.changes.available, "the kernel's change events could not be subscribed"
        yield driver, ns, reads
    finally:
        driver.close()


def converge(driver: LinuxDataplane) -> list[str]:
    steps = plan(desired(), driver.observe())
    with driver.applying():
        for _step, exc in driver.apply(steps):
            assert exc is None, exc
    return [s.describe() for s in steps]


def settle(driver: LinuxDataplane, reads: list[int]) -> None:
    """Converged, and the events of our own changes read: the next observe reads nothing."""
    for _ in range(20):  # the kernel's deferred link events (carrier) come a little later
        if converge(driver) == [] and not driver._seen.changes._drain():
            break
    reads.clear()
    assert converge(driver) == [] and converge(driver) == []
    assert reads == [], "a converged pass with nothing changed read the kernel"


@pytest.mark.parametrize(
    "behind_our_back",
    [
        ["ip", "-n", "{ns}", "link", "del", "icv100"],
        ["ip", "-n", "{ns}", "link", "set", "icv100", "down"],
        ["ip", "-n", "{ns}", "link", "set", "icv100", "type", "bridge_slave", "isolated", "off"],
        ["ip", "-n", "{ns}", "link", "set", "icv100", "nomaster"],
        ["tc", "-n", "{ns}", "qdisc", "del", "dev", "icv100", "root"],
        [*NFT, "delete", "table", "bridge", "intercloud_ic"],
        [*NFT, "flush", "set", "bridge", "intercloud_ic", "mss_1360"],
    ],
    ids=["deleted", "down", "not isolated", "out of its bridge", "qdisc", "nft table", "nft set"],
)
def test_a_change_behind_our_back_is_read_and_undone_a_quiet_kernel_is_not_read(
    dp, behind_our_back
):
    driver, ns, reads = dp
    assert converge(driver)  # made from nothing
    settle(driver, reads)
    sh(*(a.format(ns=ns) for a in behind_our_back))
    fixed = converge(driver)
    assert reads == [1], "the change was not read"
    assert fixed, f"{behind_our_back[-3:]}: nothing was done about it"
    settle(driver, reads)  # and back to converged, reading nothing


def test_a_quiet_kernel_is_read_again_after_max_age(dp, monkeypatch):
    driver, _ns, reads = dp
    settle(driver, reads)
    now = driver._seen.changes.clock()
    monkeypatch.setattr(driver._seen.changes, "clock", lambda: now + watch_mod.MAX_AGE + 1)
    assert converge(driver) == []
    assert reads == [1]


def test_the_observation_handed_out_is_a_copy(dp):
    driver, _ns, reads = dp
    settle(driver, reads)
    first = driver.observe()
    first.state.vxlans.clear()
    assert "icv100" in driver.observe().state.vxlans
    assert reads == []


def test_forgetting_learned_macs_leaves_the_observation_standing(dp):
    """A link that comes back makes the pass flush the learned MACs of every tunnel port over
    it: a bulk delete of bridge entries, which changes no interface, so the next pass reads
    nothing (a link-level flush announced every port, and 3,000 ports were read again)."""
    driver, ns, reads = dp
    settle(driver, reads)
    sh("bridge", "-n", ns, "fdb", "add", "02:00:00:00:01:00", "dev", "icv100", "master", "dynamic")
    driver.flush_learned(["icv100", "icbe1"])
    assert converge(driver) == []
    assert reads == [], "flushing the learned MACs made the next pass read the kernel"
