"""A hostile peer against a real agent and the real Linux data plane (issue 13, findings 1, 4,
9, 10): cloud B's agent is replaced by tests/functional/hostile_peer.py, served over B's own TLS
certificate inside B's namespace, answering A's calls with hostile values in turn, every
answer correctly signed. A must keep every hostile value off its host (no namespace, no
device it did not plan, only the `dataplane: ...` steps it plans in its log, no traceback),
show the bad answer in B's link or target, and keep converging C's expansions."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from intercloud.lab import nsexec
from intercloud.lab.namespaces import list_namespaces
from intercloud.lab.topology import AGENT_PORT, Lab
from tests.functional import hostile_peer
from tests.functional.hostile_peer import HOSTILE, PWNED
from tests.waiting import wait_for

SERVER = Path(hostile_peer.__file__)
# what A's log may say it did to its host: our own objects only
STEP = re.compile(
    r"(ensure_bridge icbe\d+|ensure_patch icpe\d+|attach tn-net[12]|ensure_vxlan icv\d+"
    r"|remove_link ic[bvpq]e?\d+|detach tn-net[12]"
    r"|flush_learned (icv\d+|icpe\d+|tn-net[12])(, (icv\d+|icpe\d+|tn-net[12]))*"
    r"|ensure_mss_clamp .*|remove_mss_clamp ic|ensure_no_forward .*|remove_no_forward ic)"
)
OURS = re.compile(r"ic(be|pe|qe|v)\d+")


@pytest.fixture(scope="module")
def hostile():
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (network namespaces); run them as root")
    lab = Lab("t" + secrets.token_hex(3))
    proc = None
    try:
        lab.up(3, encrypt=False)
        lab.peer("A", "B")
        lab.peer("A", "C")
        lab.stop_agent("B")
        b = lab.cloud("B")
        work = Path(b.dir)
        key = next(p.key for p in lab.state().peerings if sorted(p.clouds) == ["A", "B"])
        (work / "keys.json").write_text(json.dumps({"A": key}))
        scenario = work / "scenario.json"
        scenario.write_text("{}")
        tls = work / "tls"
        argv = [sys.executable, str(SERVER), "--listen", f"0.0.0.0:{AGENT_PORT}", "--name", "B",
                "--endpoint", b.local_ip, "--keys", str(work / "keys.json"),
                "--scenario", str(scenario), "--cert", str(tls / "agent.pem"),
                "--key", str(tls / "agent.key")]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(SERVER.parents[2] / "src")}
        with open(work / "hostile.out", "ab") as out:
            proc = subprocess.Popen(
                nsexec.exec_argv(b.ns, argv), stdout=out, stderr=subprocess.STDOUT, env=env
            )
        wait_for(lambda: lab.health("B"), timeout=15, what="the hostile peer to listen")
        yield lab, scenario
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        lab.down()


def _devices(lab, cloud: str) -> dict[str, dict]:
    out = lab.exec(cloud, ["ip", "-d", "-j", "link", "show"], check=True).stdout
    return {d["ifname"]: d for d in json.loads(out)}


def _served(scenario: Path) -> list[dict]:
    log = scenario.with_suffix(".log")
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


def _b_target(lab, uid: str) -> dict:
    exp = lab.api("A", "GET", f"/v1/expansions/{uid}", token="p1")
    return next(p for p in exp["peers"] if p["peer"] == "B")


def _link_b(lab) -> dict:
    return next(lk for lk in lab.api("A", "GET", "/v1/links") if lk["peer"] == "B")["status"]


def _all_active(lab, uids: dict[str, str]) -> bool:
    return all(
        lab.api("A", "GET", f"/v1/expansions/{uid}", token=project)["status"] == "active"
        for project, uid in uids.items()
    )


def test_a_hostile_peer_cannot_reach_the_host_nor_stop_the_others(hostile):
    lab, scenario = hostile
    started = time.monotonic()
    namespaces = set(list_namespaces())
    before = set(_devices(lab, "A"))
    Path(PWNED).unlink(missing_ok=True)
    uids = {
        "p1": lab.api("A", "POST", "/v1/expansions", {"network": "net1", "peers": ["B", "C"]},
                      token="p1")["id"],
        "p2": lab.api("A", "POST", "/v1/expansions", {"network": "net2", "peers": ["C"]},
                      token="p2")["id"],
    }  # fmt: skip
    wait_for(lambda: _all_active(lab, uids), timeout=30, what="both expansions active")

    # health first (the link), then a replica and a VNI after the link came back
    turns = [(c, x) for c, x in HOSTILE if c == "health"]
    turns += [(c, x) for c, x in HOSTILE if c in ("replica", "vni")][::3]
    shown: dict[int, str] = {}
    for i, (call, answer) in enumerate(turns):
        if call != "health":  # back up first, so that A asks B for its replica again
            down = {"id": f"down{i}", "call": "health", "answer": turns[0][1]}
            scenario.write_text(json.dumps(down))
            wait_for(lambda: _link_b(lab)["state"] == "down", timeout=15, what="link B down")
        scenario.write_text(
            json.dumps({"id": i, "call": call, "answer": answer, "forget": call == "vni"})
        )
        wait_for(
            lambda i=i, call=call: any(s["id"] == i and s["hostile"] for s in _served(scenario))
            and f"bad answer to {call}" in (_link_b(lab)["reason"] + _b_target(lab, uids["p1"])
                                            ["reason"]),
            timeout=20,
            what=f"A to refuse hostile answer {i} to {call}",
        )  # fmt: skip
        where = _link_b(lab)["reason"] if call == "health" else _b_target(lab, uids["p1"])["reason"]
        shown[i] = where
        assert f"peer B: bad answer to {call}: " in where and where.isprintable(), where
        assert len(where) <= 1024
        # C's expansions keep converging meanwhile, the one B shares included
        assert lab.api("A", "GET", f"/v1/expansions/{uids['p2']}", token="p2")["status"] == "active"
        shared = lab.api("A", "GET", f"/v1/expansions/{uids['p1']}", token="p1")["peers"]
        assert [p["status"] for p in shared if p["peer"] == "C"] == ["active"], shared
        last = lab.api("A", "GET", "/v1/status")["reconciler"]["last_error"] or ""
        assert "peer B" in last or call != "health" or _link_b(lab)["state"] == "down", last

    scenario.write_text("{}")  # honest again: everything converges
    wait_for(lambda: _all_active(lab, uids), timeout=30, what="both expansions active again")

    # nothing of B's reached the host
    # other labs may come and go meanwhile: theirs are named <lab>-<role>; the hostile answers
    # would make `pwn`
    new = set(list_namespaces()) - namespaces
    assert "pwn" not in new and all("-" in n for n in new), new
    assert not Path(PWNED).exists()
    after = _devices(lab, "A")
    for name in set(after) - before:
        assert OURS.fullmatch(name), name
    b, c = lab.cloud("B"), lab.cloud("C")
    for name, dev in after.items():
        info = (dev.get("linkinfo") or {}).get("info_data") or {}
        if OURS.fullmatch(name) and name.startswith("icv"):
            assert info.get("remote") in (b.local_ip, c.local_ip), (name, info)
    log = lab.agent_log("A")
    assert "Traceback" not in log
    steps = re.findall(r"dataplane: (.*)", log)
    assert steps, "no dataplane step logged"
    for step in steps:
        assert STEP.fullmatch(step) and "pwn" not in step, step
    for line in log.splitlines():  # one line per record: nothing of B's split one
        assert not line.startswith(("netns", "link:", "forged", "$(")), line
    for project, uid in uids.items():
        lab.api("A", "DELETE", f"/v1/expansions/{uid}", token=project)
    print(f"{len(turns)} hostile answers refused in {time.monotonic() - started:.0f} s")
    for i, why in shown.items():
        print(f"  {i}: {why[:150]}")
