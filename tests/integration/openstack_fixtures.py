"""Reusable pieces for tests that need a real Keystone and Neutron: a namespace of their own
(unique `k<hex>-` prefix) with both services on its loopback, torn down (processes, namespace)
even when the test fails.

    from tests.integration.openstack_fixtures import openstack_cloud, openstack_factory

    def test_x(openstack_factory):
        svc, api = openstack_factory("ctl")          # ≈ 10 s
        tok = api.admin_token()

    with openstack_cloud(tmp_path / "os") as (svc, api):
        ...

    @pytest.fixture(scope="module")
    def oslab():
        with openstack_lab(3, peers=("AB", "AC")) as lab:   # the whole OpenStack lab
            yield lab
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from intercloud.lab.openstack.api import OpenStackApi
from intercloud.lab.openstack.lab import OpenStackLab
from intercloud.lab.openstack.services import OpenStackServices
from tests.integration.namespaces import Namespaces
from tests.waiting import wait_for

Cloud = tuple[OpenStackServices, OpenStackApi]


def new_prefix() -> str:
    return f"k{secrets.token_hex(3)}-"


@contextlib.contextmanager
def openstack_cloud(
    workdir: Path,
    *,
    ns: str | None = None,
    keystone_port: int = 5000,
    neutron_port: int = 9696,
) -> Iterator[Cloud]:
    """A fresh namespace (`ns`, default k<hex>-ctl) running Keystone and Neutron; on exit both
    are stopped and the namespace is deleted with anything left in it."""
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (network namespaces); run them as root")
    with Namespaces() as made:
        ns = made.add(ns or f"{new_prefix()}ctl")
        svc = OpenStackServices(ns, workdir, keystone_port, neutron_port)
        api = OpenStackApi.for_services(svc)
        try:
            svc.start()
            yield svc, api
        finally:
            api.close()
            svc.stop()


@pytest.fixture
def openstack_factory(tmp_path: Path) -> Iterator[Callable[..., Cloud]]:
    """make(name="ctl", keystone_port=5000, neutron_port=9696) -> (services, api): one more
    simulated cloud's controller; all are removed after the test."""
    prefix = new_prefix()
    with contextlib.ExitStack() as stack:

        def make(name: str = "ctl", **ports: int) -> Cloud:
            return stack.enter_context(
                openstack_cloud(tmp_path / name, ns=f"{prefix}{name}", **ports)
            )

        yield make


@contextlib.contextmanager
def openstack_lab(
    clouds: int = 2, *, peers: tuple[str, ...] = ("AB",), prefix: str = "o"
) -> Iterator[OpenStackLab]:
    """The OpenStack lab (lab/openstack) of `clouds` clouds, each pair in `peers` peered
    ("AB": A and B); down on exit, also when the test fails."""
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (network namespaces); run them as root")
    lab = OpenStackLab(prefix + secrets.token_hex(3))
    try:
        lab.up(clouds)
        for a, b in peers:
            lab.peer(a, b)
        yield lab
    finally:
        lab.down()


def expand_active(
    lab: OpenStackLab, network: str, peers: list[str], *, project: str = "p1", timeout: float = 90
) -> dict:
    """`network` of `project` in A expanded to `peers`, once its status is active."""
    exp = lab.api("A", "POST", "/v1/expansions", {"network": network, "peers": peers}, project)
    wait_for(
        lambda: (
            lab.api("A", "GET", f"/v1/expansions/{exp['id']}", token=project)["status"] == "active"
        ),
        timeout,
        what=f"the expansion of {network} to {', '.join(peers)}",
    )
    return exp
