"""The benchmark's short mode runs end to end and reports every figure: proof that `python -m
bench` works, not a performance test (no timing assertions: this machine is shared)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# In `make test` (CI); alone: `make test-bench`.
pytestmark = pytest.mark.bench

# Every figure the benchmark must report (ids in the JSON), whatever the machine.
CONFIGS = ("underlay", "vxlan", "ic_plain", "vpnaas", "ic_enc")
EXPERIMENTS = ("ic_enc_1lane", "vpnaas_2charons")  # for comparison, TCP only
UDP_SIZES = (64, 512, 1400, 1472, 4000, 8000)
EXPECTED = (
    [f"tcp.{c}" for c in CONFIGS + EXPERIMENTS]
    + [f"rtt.{c}" for c in CONFIGS]
    + [f"udp.{c}.{s}" for c in CONFIGS for s in UDP_SIZES]
    + [
        "control.expansion_to_ping.median",
        "control.expansion_to_ping.p95",
        "control.link_up.median",
        "control.link_up.max",
        "api.reads.p50",
        "api.reads.p99",
        "api.writes.p50",
        "api.writes.p99",
        "scale.create_all",
        "scale.reconcile_from_nothing",
        "scale.delete_all",
        "scale.rss_peak",
        "scale.converged_pass",
        "scale.steady_pass",
        "probes.cost",
        "probes.under_load",
        "openstack.tcp",
        "openstack.rtt",
        "migration.standalone.median",
        "migration.standalone.max",
        "migration.openstack.median",
        "migration.openstack.max",
        *(f"ha.{how}.{stat}" for how in ("kill", "cut") for stat in ("median", "p95", "max")),
        "ha.delivered_once",
    ]
)
DEFAULT_SECTIONS = ("dataplane", "control", "scale", "probes", "openstack", "migration", "ha")
WITH_TARGET = {
    "tcp.ic_plain",
    "tcp.ic_enc",
    "control.expansion_to_ping.median",
    "control.link_up.median",
    "api.reads.p99",
    "scale.reconcile_from_nothing",
    "scale.rss_peak",
    "scale.converged_pass",
    "scale.steady_pass",
    "probes.cost",
    "probes.under_load",
    "migration.standalone.median",
    "migration.openstack.max",
    "ha.kill.median",
    "ha.cut.median",
    "ha.delivered_once",
}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("the benchmark needs root (network namespaces)")
    out = tmp_path_factory.mktemp("bench") / "short.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--short", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,  # with two OpenStack labs and the moves: ~8 min in all
    )
    assert out.exists(), f"no JSON written (exit {proc.returncode}): {proc.stderr[-3000:]}"
    data = json.loads(out.read_text())
    data["_exit"], data["_stderr"], data["_stdout"] = proc.returncode, proc.stderr, proc.stdout
    return data


def test_runs_without_errors_and_cleans_up(result):
    assert result["errors"] == [], result["_stderr"][-3000:]
    assert result["_exit"] == 0, result["_stderr"][-3000:]
    assert result["leftovers"] == {"namespaces": [], "charon_pids": []}
    run_id = result["run_id"]
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert run_id not in names


def test_machine_facts_and_table(result):
    m = result["machine"]
    assert m["cpu_model"] and m["cores"] >= 1 and m["kernel"]
    assert result["mode"] == "short"
    assert "Data plane" in result["_stdout"] and "Control plane" in result["_stdout"]
    sections = result["details"]["section_seconds"]  # what each costs: the suite waits for it
    print(f"\nbench --short, seconds per section: {sections}")
    assert set(sections) == set(DEFAULT_SECTIONS) and all(v > 0 for v in sections.values())


def test_every_figure_has_a_value_a_baseline_and_a_ratio(result):
    figures = {f["id"]: f for f in result["figures"]}
    missing = [f for f in EXPECTED if f not in figures]
    assert not missing, missing
    for f in figures.values():
        for key in ("value", "baseline_value", "ratio"):
            assert isinstance(f[key], int | float) and math.isfinite(f[key]), f
        assert f["value"] > 0 and f["baseline_value"] > 0, f
        assert f["ratio"] == pytest.approx(f["value"] / f["baseline_value"], rel=0.01, abs=1e-3)
        assert f["baseline_id"] and f["baseline_name"] and f["unit"], f
    for fid in WITH_TARGET:
        assert figures[fid]["target"] and figures[fid]["verdict"] in ("pass", "fail"), fid


def test_dataplane_details(result):
    dp = result["details"]["dataplane"]
    for c in CONFIGS:
        wire = dp[c]["wire_packets_per_datagram"]
        assert set(wire) == {str(s) for s in UDP_SIZES}, wire
        assert all(v >= 0.9 for v in wire.values()), (c, wire)  # at least one packet each
        for s in UDP_SIZES:
            assert 0 <= dp[c]["udp"][str(s)]["loss_pct"] <= 100
    # the encrypted expansion really used both lanes (the lab's default on 2+ cores)
    lanes = dp["ic_enc"]["lane_bytes_since_start"]
    assert len(lanes) == (2 if (os.cpu_count() or 1) >= 2 else 1), lanes
    assert all(v > 0 for v in lanes.values()), lanes


def test_migration_details(result):
    moves = result["details"]["migration"]
    for mode, n in (("standalone", 2), ("openstack", 2)):  # --short: A->B and back
        fig = moves[mode]
        assert fig["moves"] == len(fig["gaps_s"]) == n, fig
        assert all(g > 0 for g in fig["gaps_s"]), fig


def test_ha_details(result):
    """2 failovers each (--short); whatever the gaps, never a broadcast twice and never two
    gateways holding the address or forwarding at one sample."""
    ha = result["details"]["ha"]
    for how in ("kill", "cut"):
        assert ha[how]["failovers"] == len(ha[how]["gaps_s"]) == 2, ha
        assert all(g > 0 for g in ha[how]["gaps_s"]), ha
    assert ha["broadcasts"] > 0 and ha["duplicates"] == 0 and ha["overlaps"] == 0, ha
