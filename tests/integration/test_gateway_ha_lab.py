"""Gateway failover in a lab with two gateways per cloud (lab up --ha): real agents, real
charons (encrypted links), a real PostgreSQL per cloud. A VM of A (on the tenant segment behind
both of A's gateways) pings a VM of B at 20/s while A's active gateway is failed; the longest
gap is printed (the figures and their targets are in bench/ha.py, not asserted here)."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from typing import Any

import pytest

from bench import ha
from bench.migration import Pings
from intercloud.errors import IntercloudError
from intercloud.lab.nsexec import LabError
from intercloud.lab.records import LAB_ROOT
from intercloud.lab.topology import Lab
from tests.integration.traffic import WanCapture
from tests.waiting import wait_for


@pytest.fixture(scope="module")
def lab():
    name = "ht" + secrets.token_hex(2)
    made = ha.build(name, state_dir=LAB_ROOT / name)  # where `intercloud lab` finds it
    try:
        yield made
    finally:
        made.down()


@pytest.fixture
def ready(lab):
    """The lab with both of A's gateways running (one active) after each test."""
    try:
        yield lab
    finally:
        for g in lab.gateways("A"):
            if g["failed"] or g["agent"] != "running":
                lab.restore_gateway("A", g["gateway"])
        wait_for(lambda: lab.active_gateway("A"), 30, what="an active gateway of A")
        wait_for(lambda: ha.reaches(lab), 60, what="a1 -> b1 again")


def call(lab: Lab, method: str, path: str, body: Any = None, token: str = "p1") -> Any:
    """An API call the way a client retries one through a failover: no answer (within a
    client's timeout), or a standby's 503, is tried again."""

    def attempt() -> Any:
        try:
            return {"answer": lab.api("A", method, path, body, token=token, timeout=5)}
        except LabError:
            return None  # nobody holds the address yet
        except IntercloudError as exc:
            if getattr(exc, "status", None) == 503:
                return None
            raise

    return wait_for(attempt, 30, 0.2, f"{method} {path}")["answer"]


def b_config(lab: Lab) -> dict[str, Any]:
    """B's configuration as its admin sees it (statuses left out) and its active gateway."""

    def strip(items: Any) -> list[Any]:
        items = items.get("items", items) if isinstance(items, dict) else items
        return sorted(
            (
                {k: v for k, v in i.items() if k not in ("status", "ipsec", "checked_at")}
                for i in items
            ),  # fmt: skip
            key=repr,
        )

    return {
        "peers": strip(lab.api("B", "GET", "/v1/peers")),
        "links": strip(lab.api("B", "GET", "/v1/links")),
        "agreements": strip(lab.api("B", "GET", "/v1/agreements")),
        "active": lab.active_gateway("B"),
    }


def expansion_states(lab: Lab) -> tuple[str, list[str]]:
    exp = call(lab, "GET", "/v1/expansions")
    items = exp.get("items", exp) if isinstance(exp, dict) else exp
    net1 = [e for e in items if e["network"] == "net1"]
    assert len(net1) == 1, items
    replicas = lab.api("B", "GET", "/v1/replicas")
    reps = replicas.get("items", replicas) if isinstance(replicas, dict) else replicas
    return net1[0]["status"], [r.get("status") for r in reps if r.get("network") == "net1"]


@pytest.mark.parametrize("how", ["kill", "cut"])
def test_failover_under_ping_keeps_the_expansion_and_leaves_b_alone(ready, how, tmp_path):
    lab = ready
    before_b = b_config(lab)
    before = lab.active_gateway("A")
    with (
        WanCapture(lab, str(tmp_path / "wan.pcap")) as wan,
        Pings(lab, "A/a1", "10.10.0.2") as pings,
    ):
        time.sleep(2)
        start = time.time()
        failed = lab.fail_gateway("A", how)
        wait_for(lambda: lab.active_gateway("A") not in (None, before), 15, 0.05, "takeover")
        wait_for(lambda: ha.reaches(lab), 30, 0.2, "a1 -> b1 through the new active")
        time.sleep(2)
    gap = pings.gaps([start])[0]
    print(f"\nfailover ({how}) of A:{failed}: longest ping gap {gap:.3f} s")
    assert failed == before
    assert pings.answered_after(start, delay=gap + 1.0) > 10  # the ping goes on afterwards
    assert expansion_states(lab) == ("active", ["active"])
    assert b_config(lab) == before_b  # B's configuration and its gateway untouched
    assert wan.lines("udp port 4789") == []  # never VXLAN in the clear, during the take-over too
    assert wan.lines("esp or udp port 4500")  # (the capture saw the encrypted traffic)


def test_database_cut_never_two_forwarding_and_broadcasts_arrive_once(ready):
    lab = ready
    before = lab.active_gateway("A")
    with (
        ha.GatewayWatch(lab, "A") as watch,
        ha.Broadcasts(lab, "B/b2", "A/a1", "10.10.0.255") as casts,
    ):
        time.sleep(2)
        lab.fail_gateway("A", "db")
        wait_for(lambda: lab.active_gateway("A") not in (None, before), 15, 0.05, "takeover")
        took_over = time.monotonic()
        # Through the new active: how soon is the failover's figure (bench/ha.py), not asserted.
        wait_for(lambda: casts.since(took_over), 30, 0.05, "broadcasts through the new active")
        time.sleep(2)
    holders = [h for _, h, _ in watch.samples]
    print(f"\n{len(watch.samples)} samples; holders over time: {_runs(holders)}")
    assert watch.overlaps() == []
    assert frozenset({before}) in holders and holders[-1] not in (frozenset(), {before})
    assert casts.duplicates() == {}
    got = sorted(int(n) for n in casts.seen)
    print(
        f"broadcasts: {len(got)} of {got[-1] + 1} received once, none twice; "
        f"longest silence {casts.longest_silence():.2f} s"
    )
    assert got[0] < 10  # before the failover too
    assert len(casts.since(took_over + 1.0)) > 10  # and they go on afterwards


def _runs(holders: list[frozenset[str]]) -> list[str]:
    out: list[str] = []
    for h in holders:
        name = "+".join(sorted(h)) or "-"
        if not out or out[-1] != name:
            out.append(name)
    return out


def test_the_old_active_comes_back_as_standby_without_disturbing_traffic(ready):
    lab = ready
    failed = lab.fail_gateway("A", "kill")
    wait_for(lambda: lab.active_gateway("A") not in (None, failed), 15, 0.05, "takeover")
    new = lab.active_gateway("A")
    wait_for(lambda: ha.reaches(lab), 30, 0.2, "a1 -> b1 through the new active")
    actives = []
    with Pings(lab, "A/a1", "10.10.0.2") as pings:
        time.sleep(1)
        start = time.time()
        lab.restore_gateway("A", failed)
        for _ in range(25):
            actives.append(lab.active_gateway("A"))
            time.sleep(0.2)
    roles = {g["gateway"]: g["role"] for g in lab.gateways("A")}
    assert set(actives) == {new}  # no flapping back
    assert roles == {new: "active", failed: "standby"}
    lost, sent = pings.lost_after(start)
    print(f"old active restored: {lost} of {sent} pings lost")
    assert sent > 80 and lost <= 0.1 * sent  # next to none lost


def test_an_expansion_created_or_deleted_during_a_failover_is_done_once(ready):
    lab = ready
    exp = call(lab, "POST", "/v1/expansions", {"network": "net2", "peers": ["B"]}, token="p2")
    lab.fail_gateway("A", "kill")  # before A's pass built it or told B
    wait_for(
        lambda: call(lab, "GET", f"/v1/expansions/{exp['id']}", token="p2")["status"] == "active",
        60,
        0.3,
        "net2 active after the failover",
    )
    assert [e["id"] for e in _items(call(lab, "GET", "/v1/expansions", token="p2"))] == [exp["id"]]
    assert len(_replicas(lab, "net2")) == 1
    for g in lab.gateways("A"):  # both gateways running again before the second failover
        if g["failed"]:
            lab.restore_gateway("A", g["gateway"])
    call(lab, "DELETE", f"/v1/expansions/{exp['id']}", token="p2")
    lab.fail_gateway("A", "cut")
    wait_for(lambda: _gone(lab, exp["id"]), 60, 0.3, "net2's expansion gone after the failover")
    wait_for(lambda: _replicas(lab, "net2") == [], 60, 0.3, "B's replica of net2 gone")


def _items(data: Any) -> list[dict[str, Any]]:
    return data.get("items", data) if isinstance(data, dict) else data


def _replicas(lab: Lab, network: str) -> list[dict[str, Any]]:
    return [r for r in _items(lab.api("B", "GET", "/v1/replicas")) if r.get("network") == network]


def _gone(lab: Lab, uid: str) -> bool:
    try:
        call(lab, "GET", f"/v1/expansions/{uid}", token="p2")
    except IntercloudError as exc:
        return getattr(exc, "status", None) == 404
    return False


def lab_cli(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "intercloud", "lab", *args, "--name", lab.name],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_lab_gateway_commands(ready):
    """The operator's commands: list (who is active), fail with a bad --how (refused, nothing
    changes), fail a cloud's active one (named), restore it (standby)."""
    lab = ready
    listed = lab_cli(lab, "gateway", "list", "A")
    assert listed.returncode == 0, listed.stderr
    active = lab.active_gateway("A")
    assert f"gateway A:{active}" in listed.stdout and "holds the cloud's address" in listed.stdout
    bad = lab_cli(lab, "gateway", "fail", "A", "--how", "unplug")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "unplug" in bad.stderr and len(bad.stderr.strip().splitlines()) <= 3
    assert lab.active_gateway("A") == active  # nothing failed
    failed = lab_cli(lab, "gateway", "fail", "A", "--how", "kill")
    assert failed.returncode == 0 and f"gateway A:{active} failed (kill)" in failed.stdout
    wait_for(lambda: lab.active_gateway("A") not in (None, active), 15, 0.05, "takeover")
    restored = lab_cli(lab, "gateway", "restore", "A")
    assert restored.returncode == 0 and f"gateway A:{active}: charons and agent started" in (
        restored.stdout
    )
    roles = {g["gateway"]: g["role"] for g in lab.gateways("A")}
    assert roles[active] == "standby"
    single = lab_cli(lab, "gateway", "list", "nosuch")
    assert single.returncode != 0 and "no cloud" in single.stderr
