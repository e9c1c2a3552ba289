"""Integration tests run the real thing: namespaces, kernel bridges and VXLAN, agents."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from intercloud.lab.topology import Lab
from tests.integration.namespaces import Namespaces


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, attach the tail of every lab agent's log: CI keeps nothing else."""
    report = yield
    lab = _lab_of(getattr(item, "funcargs", {})) if report.failed else None
    if lab is not None:
        for cloud in lab.clouds:
            try:
                report.sections.append((f"agent {cloud} log", lab.agent_log(cloud, 60)))
            except Exception as exc:  # the lab may be half gone; say so, do not mask the failure
                report.sections.append((f"agent {cloud} log", f"unavailable: {exc}"))
    return report


def _lab_of(funcargs: dict) -> Lab | None:
    """The test's lab: a fixture's value, or the first item of one (oslab is (lab, path))."""
    for value in funcargs.values():
        for candidate in value if isinstance(value, tuple) else (value,):
            if isinstance(candidate, Lab):
                return candidate
    return None


@pytest.fixture
def namespaces() -> Iterator[Namespaces]:
    """Fresh network namespaces for one test: `namespaces("gw")` makes `ictest-gw-<uuid8>`
    (loopback up); all are deleted after the test, what runs in them stopped, even on failure."""
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (network namespaces); run them as root")
    with Namespaces() as made:
        yield made


@pytest.fixture(scope="module")
def lab3():
    """Three clouds A, B, C with their agents and charons; C sits behind a NAT router; A is
    peered with B and with C; every link is encrypted (IPsec, NAT-T to C)."""
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (network namespaces); run them as root")
    lab = Lab("t" + secrets.token_hex(3))
    try:
        lab.up(3, nat=["C"])
        lab.peer("A", "B")
        lab.peer("A", "C")
        yield lab
    finally:
        lab.down()


@pytest.fixture
def vms(lab3):
    """Add VMs to lab3 with add(cloud, name, ip, network=... | replica_of=...); removed after."""
    made: list[tuple[str, str]] = []

    def add(cloud, name, ip, **kw):
        lab3.add_vm(cloud, name, ip, **kw)
        made.append((cloud, name))
        return f"{cloud}/{name}"

    yield add
    for cloud, name in made:
        lab3.remove_vm(cloud, name)
