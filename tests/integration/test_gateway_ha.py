"""Gateway HA with real processes and a real PostgreSQL (tests/integration/ha_cloud.py): two
agents of cloud A in two namespaces share one database; exactly one holds the cloud's address.
kill -9 of the active -> the other takes over; the active's database link cut -> it steps
down before the other takes over. Both gateways are sampled every 100 ms throughout: at no
sample do two hold the address."""

from __future__ import annotations

import os
import shutil
import signal
import time

import pytest

from intercloud.lab import nshttp
from tests.integration import ha_cloud
from tests.integration.ha_cloud import CLOUD_ADDRESS, HaCloud
from tests.integration.namespaces import ip
from tests.waiting import wait_for


@pytest.fixture
def cloud(namespaces):
    c = ha_cloud.make(namespaces)
    try:
        c.build()
        c.start_agent("gw1")
        c.wait_holder("gw1")  # the first to start takes the lease
        c.start_agent("gw2")
        c.start_sampling()
        yield c
    except BaseException:
        for gw in ha_cloud.GATEWAYS:
            print(
                f"--- {gw} log\n{c.log(gw)[-3000:]}" if (c.workdir / f"{gw}.log").exists() else ""
            )
        raise
    finally:
        c.close()
        namespaces.close()  # the namespaces first: the PostgreSQL data goes after its server
        shutil.rmtree(c.workdir, ignore_errors=True)


def never_two(c: HaCloud) -> None:
    both = [t for t, held in c.samples if len(held) > 1]
    assert c.samples and not both, f"{len(both)} samples with two gateways holding the address"


def role(c: HaCloud, gw: str) -> str | None:
    st = c.status(gw)
    return st["ha"]["role"] if st else None


def test_one_active_standby_refuses_writes_and_kill_9_fails_over(cloud):
    c = cloud
    time.sleep(1.0)
    assert c.holders() == {"gw1"}
    st1, st2 = c.status("gw1"), c.status("gw2")
    assert st1["ha"]["role"] == "active" and st2["ha"]["role"] == "standby"
    assert st1["ha"]["active"] == st2["ha"]["active"] == "gw1"
    assert st1["reconciler"]["passes"] > 0 and st2["reconciler"]["passes"] == 0  # no writing
    assert {g["name"] for g in st2["ha"]["gateways"]} == {"gw1", "gw2"}
    # a write on the standby: 503 naming the active; on the active it goes through
    peer = {"name": "B", "federation_url": "https://198.18.200.99:8700", "key": "k" * 32}
    peer["underlay_endpoint"] = "198.18.200.99"
    code, body, _ = nshttp.http(c.ns["gw2"], "POST", "/v1/peers", body=peer, token=c.token)
    assert code == 503 and body["active"] == "gw1" and body["error"]["code"] == "standby"
    code, _, _ = nshttp.http(c.ns["gw1"], "POST", "/v1/peers", body=peer, token=c.token)
    assert code == 201
    # a neighbour on the underlay knows the address at gw1's MAC
    ip("netns", "exec", c.ns["db"], "ping", "-c1", "-W1", CLOUD_ADDRESS)
    assert c.neighbour_mac() == c.mac(c.ns["gw1"])

    c.kill("gw1")
    took = c.wait_holder("gw2")
    print(f"\nkill -9 of the active: gw2 holds the address after {took * 1000:.0f} ms")
    # the gratuitous ARP moved the neighbour's entry before any new traffic
    wait_for(lambda: c.neighbour_mac() == c.mac(c.ns["gw2"]), 3, 0.05, "the gratuitous ARP")
    ip("netns", "exec", c.ns["db"], "ping", "-c1", "-W1", CLOUD_ADDRESS)
    st2 = c.status("gw2")
    assert st2["ha"]["role"] == "active" and st2["ha"]["active"] == "gw2"
    assert st2["ha"]["token"] == 2 and st2["ha"]["last_failover"]["duration_ms"] > 0
    wait_for(lambda: c.status("gw2")["reconciler"]["passes"] > 0, 5, 0.1, "gw2's first pass")
    assert "gateway gw2 of A: active (token 2" in c.log("gw2")
    time.sleep(0.5)
    never_two(c)

    # the old active comes back: standby, no flapping
    c.start_agent("gw1")
    time.sleep(2.0)
    assert role(c, "gw1") == "standby" and role(c, "gw2") == "active"
    assert c.holders() == {"gw2"}
    # a graceful stop hands the lease over at once (no waiting for its expiry)
    os.kill(c.pids["gw2"], signal.SIGTERM)
    took = c.wait_holder("gw1")
    print(f"SIGTERM of the active: gw1 holds the address after {took * 1000:.0f} ms")
    assert "gateway gw2 of A: standby (token 2, shutting down" in c.log("gw2")  # released
    assert all("Traceback" not in c.log(gw) for gw in ha_cloud.GATEWAYS)
    time.sleep(0.3)
    never_two(c)


def test_database_cut_steps_down_before_the_other_takes_over(cloud):
    c = cloud
    time.sleep(1.0)
    assert c.holders() == {"gw1"}
    cut_at = time.monotonic()
    c.cut_database("gw1")
    took = c.wait_holder("gw2")
    time.sleep(0.3)  # the sampler's next samples
    lost = [t for t, held in c.samples if t > cut_at and "gw1" not in held]
    gained = [t for t, held in c.samples if t > cut_at and "gw2" in held]
    assert lost and gained and lost[0] < gained[0]  # the address left gw1 before gw2 had it
    print(
        f"\ndatabase cut: gw1 stepped down within {(lost[0] - cut_at) * 1000:.0f} ms "
        f"(100 ms samples), gw2 held the address after {took * 1000:.0f} ms"
    )
    assert "gateway gw1 of A: standby" in c.log("gw1")
    c.cut_database("gw1", cut=False)  # the old active comes back: it stays standby
    wait_for(lambda: role(c, "gw1") == "standby", 20, 0.2, "gw1's status after the cut")
    time.sleep(2.0)
    assert role(c, "gw1") == "standby" and role(c, "gw2") == "active"
    assert c.holders() == {"gw2"}
    never_two(c)
    assert all("Traceback" not in c.log(gw) for gw in ha_cloud.GATEWAYS)
