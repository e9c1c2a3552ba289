"""A real Prometheus (Debian's) scrapes the lab's agents' /metrics over HTTPS with the admin
token and each cloud's CA, from the underlay router's namespace (a monitoring host on the WAN);
PromQL over its HTTP API gives every link's state and the rate of ESP bytes while VMs ping
across an expansion."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from intercloud.lab import nsexec, nshttp
from tests.integration.test_expansion import expand, shrink
from tests.waiting import wait_for

PORT = 19090  # in the WAN namespace: nothing else listens there


def scrape_config(lab, tmp: Path) -> dict:
    jobs = []
    for cloud in lab.clouds:
        c = lab.cloud(cloud)
        token = tmp / f"{cloud}.token"
        token.write_text(c.admin_token)
        token.chmod(0o600)
        jobs.append(
            {
                "job_name": f"intercloud-{cloud}",
                "scheme": "https",
                "authorization": {"type": "Bearer", "credentials_file": str(token)},
                "tls_config": {"ca_file": c.ca},
                "static_configs": [
                    {"targets": [urlsplit(c.url).netloc], "labels": {"cloud": cloud}}
                ],
            }
        )
    return {"global": {"scrape_interval": "1s"}, "scrape_configs": jobs}


@pytest.fixture
def prometheus(lab3, tmp_path) -> Iterator[str]:
    """Prometheus in the WAN namespace; yields its namespace. Stopped after the test whatever
    happens; its log goes into the test's report on failure."""
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed (make install-system: Debian's prometheus)")
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps(scrape_config(lab3, tmp_path)))  # JSON is YAML
    ns = lab3.namespace("wan")
    argv = [
        "prometheus",
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{PORT}",
    ]
    log = open(tmp_path / "prometheus.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(nsexec.exec_argv(ns, argv), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(
            lambda: query(ns, "up") is not None or proc.poll() is not None,
            timeout=30,
            what="Prometheus to answer",
        )
        assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
        yield ns
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        print((tmp_path / "prometheus.log").read_text()[-3000:])  # shown on failure only


def query(ns: str, promql: str) -> dict[tuple, float] | None:
    """An instant PromQL query: {labels as sorted tuples: value}; None while not answering."""
    url = f"http://127.0.0.1:{PORT}/api/v1/query?query={quote(promql)}"
    out = nshttp.request(ns, "GET", url, timeout=5)
    body = out["body"]
    if out["status"] != 200 or not isinstance(body, dict) or body.get("status") != "success":
        return None
    return {
        tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in body["data"]["result"]
    }


def test_prometheus_reads_link_states_and_tunnel_byte_rates(lab3, vms, prometheus):
    ns = prometheus
    every = {("A", "B"), ("A", "C"), ("B", "A"), ("C", "A")}  # (cloud, peer): lab3's links

    def links_up() -> dict | None:
        got = query(ns, "intercloud_link_up")
        seen = {(dict(k)["cloud"], dict(k)["peer"]): v for k, v in (got or {}).items()}
        return seen if set(seen) == every and all(v == 1.0 for v in seen.values()) else None

    wait_for(links_up, timeout=60, what="intercloud_link_up = 1 for every link")
    scraped = query(ns, "up") or {}
    assert sorted(dict(k)["cloud"] for k, v in scraped.items() if v == 1.0) == ["A", "B", "C"]

    exp = expand(lab3, "A", "p1", "net1", ["B"])
    a1 = vms("A", "a1", "10.10.0.1/24", network="net1")
    vms("B", "b1", "10.10.0.2/24", replica_of="A/net1")
    pings = subprocess.Popen(
        nsexec.exec_argv(lab3.namespace(a1), ["ping", "-q", "-i", "0.2", "10.10.0.2"]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        rate = "sum by (cloud, peer, direction) (rate(intercloud_ipsec_bytes_total[20s]))"

        def flowing() -> dict | None:
            got = {
                (d["cloud"], d["peer"], d["direction"]): v
                for k, v in (query(ns, rate) or {}).items()
                for d in [dict(k)]
            }
            want = [("A", "B", "out"), ("A", "B", "in"), ("B", "A", "out"), ("B", "A", "in")]
            return got if all(got.get(k, 0) > 0 for k in want) else None

        rates = wait_for(flowing, timeout=60, what="a non-zero rate of ESP bytes A<->B")
        assert rates[("A", "B", "out")] > 0, rates
        active = 'intercloud_expansion_peers{cloud="A",peer="B",state="active"} == 1'
        wait_for(lambda: query(ns, active), timeout=30, what="A's expansion to B active")
        a = lab3.cloud("A")
        status, text, _ = nshttp.http(a.ns, "GET", "/metrics", token=a.admin_token, cafile=a.ca)
        assert status == 200
        print(text)  # a real scrape, for the README's sample
        # each agent times Python's cyclic collector: young walks happened in every one
        walks = query(ns, 'intercloud_gc_collections_total{generation="0"}') or {}
        assert sorted(dict(k)["cloud"] for k, v in walks.items() if v >= 1) == ["A", "B", "C"]
        seconds = query(ns, "intercloud_gc_seconds_total") or {}
        assert len(seconds) == 9 and all(v >= 0 for v in seconds.values()), seconds
        # and its longest walk, which every thread (the API's too) waited for
        longest = query(ns, 'intercloud_gc_longest_walk_seconds{generation="0"}') or {}
        assert sorted(dict(k)["cloud"] for k, v in longest.items() if v > 0) == ["A", "B", "C"]
        passed = lab3.api("A", "GET", "/v1/status")["reconciler"]
        assert 0 <= passed["last_gc_ms"] <= passed["last_duration_ms"] + 1, passed
    finally:
        pings.terminate()
        pings.wait(timeout=10)
        shrink(lab3, "A", "p1", exp["id"])
