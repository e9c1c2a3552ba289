"""Gateway HA with real charons (kernel-libipsec): cloud A's two gateways gw1 and gw2 share the
address 198.18.210.1 and the IPsec identity; peer B initiates to it. A is the responder, so
after a failover nothing would re-create B's SA before B's dead-peer detection; the new active
initiates every connection at once (Ipsec.initiate_all) and the stepping-down one drops its SAs
(terminate_all). Traffic through the VXLAN port over the new SA flows again."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from intercloud.drivers.ipsec.base import ConnectionSpec
from tests.integration.namespaces import ip
from tests.integration.test_ipsec_strongswan import PSK, Env, ping, sh
from tests.waiting import wait_for

CLOUD = "198.18.210.1"
PEER = "198.18.210.2"


@pytest.fixture
def charons(tmp_path, namespaces):
    """Namespaces and charons (tests/integration/test_ipsec_strongswan.py's Env)."""
    made = Env(tmp_path, namespaces)
    try:
        yield made
    finally:
        made.cleanup()


def _switch(env: Env, roles: list[tuple[str, str]]) -> dict[str, str]:
    sw = env.ns("hasw")
    ip("-n", sw, "link", "add", "br0", "type", "bridge")
    ip("-n", sw, "link", "set", "br0", "up")
    made = {}
    for i, (role, host) in enumerate(roles):
        ns = made[role] = env.ns(role)
        env.namespaces.veth(ns, "u0", sw, f"p{i}")
        ip("-n", sw, "link", "set", f"p{i}", "master", "br0", "up")
        ip("-n", ns, "addr", "add", f"{host}/24", "dev", "u0")
        ip("-n", ns, "link", "set", "u0", "up")
    return made


def _hold(ns: str, hold: bool) -> None:
    """Move the cloud's address (what drivers/gateway/linux.py does, by hand: the driver holds
    it from inside the agent's own process)."""
    if hold:
        ip("-n", ns, "addr", "add", f"{CLOUD}/32", "dev", "u0")
        sh("ip", "netns", "exec", ns, "arping", "-U", "-c", "1", "-I", "u0", CLOUD, check=False)
    else:
        ip("-n", ns, "addr", "del", f"{CLOUD}/32", "dev", "u0")


def test_the_new_active_initiates_and_the_old_one_drops_its_sas(charons):
    env = charons
    ns = _switch(env, [("gw1", "198.18.210.11"), ("gw2", "198.18.210.12"), ("b", PEER)])
    drivers = {role: env.charon(ns[role])[1] for role in ns}
    spec_a = ConnectionSpec("link-B", CLOUD, PEER, "cloud-a", "cloud-b", PSK, initiator=False)
    spec_b = replace(spec_a, name="link-A", local=PEER, remote=CLOUD, initiator=True)
    spec_b = replace(spec_b, local_id="cloud-b", remote_id="cloud-a")
    _hold(ns["gw1"], True)
    for role in ("gw1", "gw2"):  # both configured, as a standby keeps its charon
        drivers[role].ensure_connection(spec_a)
    drivers["b"].ensure_connection(spec_b)
    for role in ns:
        env.vxlan(ns[role], CLOUD if role != "b" else PEER, PEER if role != "b" else CLOUD,
                  "10.77.0.2/24" if role == "b" else "10.77.0.1/24")  # fmt: skip
        if role != "b":  # one host behind both gateways: the same MAC whichever forwards
            ip("-n", ns[role], "link", "set", "icvx42", "address", "02:00:00:00:77:01")

    def up(a: str) -> bool:
        return drivers[a].connections()["link-B"].up and drivers["b"].connections()["link-A"].up

    wait_for(lambda: up("gw1"), 10, 0.05, "B's SA with gw1")
    assert ping(ns["b"], "10.77.0.1", count=3) == (3, 3)
    assert drivers["gw2"].initiate_all() == ["link-B"]  # (a standby never does; the address
    time.sleep(0.5)  # is not here, so its charon cannot reach B: nothing comes up)
    assert not drivers["gw2"].connections()["link-B"].up
    drivers["gw2"].terminate_all()

    _hold(ns["gw1"], False)  # gw1 steps down: address, then SAs
    drivers["gw1"].terminate_all()
    _hold(ns["gw2"], True)  # gw2 takes over: address, then IKE at once
    started = time.monotonic()
    assert drivers["gw2"].initiate_all() == ["link-B"]
    wait_for(lambda: up("gw2"), 10, 0.02, "B's SA with gw2")
    took = time.monotonic() - started
    print(
        f"\nfailover of a responder-only gateway: SAs up with the new active "
        f"{took * 1000:.0f} ms after its initiate"
    )
    assert ping(ns["b"], "10.77.0.1", count=3) == (3, 3)
    gw1 = drivers["gw1"].connections()
    assert "link-B" in gw1 and not gw1["link-B"].up  # still configured, no SA
    assert drivers["gw2"].initiate_all() == []  # up: nothing to initiate
