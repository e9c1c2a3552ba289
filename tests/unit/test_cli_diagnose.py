"""`intercloud diagnose` against a fake agent: the table with a mark per layer and the advice
of the first broken one, --json, and the exit codes (0 fine, 3 broken, 1 an error)."""

from __future__ import annotations

import json

from tests.unit.test_cli import agent, err, run  # noqa: F401 - the fixture

FINE = {
    "peer": "B",
    "broken": None,
    "advice": "",
    "layers": [
        {"layer": "underlay", "state": "ok", "detail": "route to 198.18.2.2", "advice": ""},
        {"layer": "tunnel", "state": "skipped", "detail": "no tunnel probe", "advice": ""},
    ],
}
BROKEN = {
    "peer": "C",
    "broken": "ipsec",
    "advice": "the pre-shared keys differ",
    "layers": [
        {"layer": "underlay", "state": "ok", "detail": "route", "advice": ""},
        {
            "layer": "ipsec",
            "state": "broken",
            "detail": "IPsec to C not up: authentication failed",
            "advice": "the pre-shared keys differ",
        },
    ],
}


def test_one_fine_link_exits_0_with_a_table(agent):  # noqa: F811
    agent.on("GET", "/v1/links/B/diagnosis", (200, FINE))
    out = run("diagnose", "B").output
    assert "Link B: every layer fine" in out
    assert "✓ ok" in out and "· skipped" in out and "route to 198.18.2.2" in out
    assert agent.clients[0][2] >= 60  # a walk may take a while: the timeout is raised


def test_a_broken_layer_exits_3_and_prints_its_advice(agent):  # noqa: F811
    agent.on("GET", "/v1/links/C/diagnosis", (200, BROKEN))
    out = run("diagnose", "C", code=3).output
    assert "Link C: broken at ipsec" in out and "✗ broken" in out
    assert out.strip().splitlines()[-1] == "ipsec: the pre-shared keys differ"


def test_json_is_the_whole_walk(agent):  # noqa: F811
    agent.on("GET", "/v1/links/C/diagnosis", (200, BROKEN))
    assert json.loads(run("diagnose", "C", "--json", code=3).output) == BROKEN
    assert json.loads(run("--json", "diagnose", "C", code=3).output) == BROKEN


def test_every_link_without_peer(agent):  # noqa: F811
    agent.on("GET", "/v1/diagnosis", (200, {"links": [FINE, BROKEN], "broken": ["C"]}))
    out = run("diagnose", code=3).output
    assert "Link B: every layer fine" in out and "Link C: broken at ipsec" in out
    agent.on("GET", "/v1/diagnosis", (200, {"links": [FINE], "broken": []}))
    assert json.loads(run("diagnose", "--json").output) == {"links": [FINE]}
    agent.on("GET", "/v1/diagnosis", (200, {"links": [], "broken": []}))
    assert "(no links)" in run("diagnose").output


def test_unknown_peer_and_unreachable_agent_are_one_line(agent):  # noqa: F811
    message = {"error": {"code": "not_found", "message": "peer: unknown peer 'Z'"}}
    agent.on("GET", "/v1/links/Z/diagnosis", (404, message))
    assert err("diagnose", "Z") == "error: peer: unknown peer 'Z'"


def test_agent_not_listening_is_one_line():
    line = err("--url", "http://127.0.0.1:9", "diagnose", "B")
    assert "cannot reach the agent" in line
