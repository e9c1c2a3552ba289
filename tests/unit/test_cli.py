"""The `intercloud` CLI against a fake agent: its client factory, handed in through the root
command's context object, builds clients on an httpx.MockTransport."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import types
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner

import intercloud
from intercloud.api_client import ApiClient
from intercloud.cli import app
from intercloud.cli import main as cli_main
from intercloud.cli.context import CliContext

SECRET = "very-secret-hmac-key-0123456789"
ADMIN = "admin-token-abcdef"


class FakeAgent:
    """Answers from a routing table {(METHOD, path): answer}; an answer is (status, json), a
    list of those (served in turn, the last one repeated) or a callable(request)."""

    current: FakeAgent | None = None  # the `agent` fixture's, whose clients run() hands in

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], object] = {}
        self.calls: list[tuple[str, str, object]] = []
        self.tokens: list[str | None] = []
        self.clients: list[tuple[str, str | None, float]] = []
        self.cacerts: list[str | None] = []

    def make_client(self, url, token, timeout, cacert=None):
        self.clients.append((url, token, timeout))
        self.cacerts.append(cacert)
        return ApiClient(url, token, timeout=timeout, transport=httpx.MockTransport(self.handler))

    def on(self, method: str, path: str, *answers) -> None:
        self.routes[(method, path)] = list(answers)

    def handler(self, request: httpx.Request) -> httpx.Response:
        key = (request.method, request.url.raw_path.decode())
        self.calls.append((*key, json.loads(request.content) if request.content else None))
        self.tokens.append(request.headers.get("authorization"))
        answer = self.routes.get(key, [(404, {"error": {"code": "not_found", "message": "nope"}})])
        if callable(answer):
            return answer(request)
        status, payload = answer.pop(0) if len(answer) > 1 else answer[0]
        return (
            httpx.Response(status, json=payload) if payload is not None else httpx.Response(status)
        )


@pytest.fixture
def agent(monkeypatch):
    fake = FakeAgent()
    monkeypatch.setattr(FakeAgent, "current", fake)
    for var in (
        "INTERCLOUD_URL",
        "INTERCLOUD_TOKEN",
        "INTERCLOUD_CACERT",
        "INTERCLOUD_CONFIG",
        "COLUMNS",
    ):
        monkeypatch.delenv(var, raising=False)
    return fake


def run(*args: str, env: dict[str, str] | None = None, code: int = 0):
    fake = FakeAgent.current
    state = CliContext(make_client=fake.make_client, poll_interval=0.001) if fake else None
    result = CliRunner().invoke(cli_main.cli, list(args), env=env, obj=state)
    assert result.exit_code == code, (result.output, result.exception)
    return result


def assert_one_error_line(result, code: int = 1) -> str:
    assert result.exit_code == code, (result.output, result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def err(*args: str, code: int = 1) -> str:
    """Runs a failing command; its one error line."""
    return assert_one_error_line(run(*args, code=code), code)


PEER_B = {"name": "B", "federation_url": "https://b:8700", "underlay_endpoint": "192.0.2.2"}
LINK_STATUS = {"state": "down", "reason": "no answer from 192.0.2.2", "checked_at": "t1"}
LINK_B = {"peer": "B", "local_endpoint": "192.0.2.1", "mtu": 1500, "status": LINK_STATUS}
EXP = {"id": "e1", "project": "p1", "network": "net1", "cidr": "10.10.0.0/24", "status": "pending"}


def exp_with(*peers):
    rows = [{"peer": p, "vni": v, "status": s, "reason": r} for p, v, s, r in peers]
    return {**EXP, "peers": rows}


def test_peer_create_sends_body_and_never_prints_the_key(agent):
    agent.on("POST", "/v1/peers", (201, {**PEER_B, "key": SECRET}))
    args = ["--token", ADMIN, "peer", "create", "B", "--url", "https://b:8700"]
    result = run(*args, "--endpoint", "192.0.2.2", "--key", SECRET)
    assert agent.calls == [("POST", "/v1/peers", {**PEER_B, "key": SECRET})]
    assert agent.tokens == [f"Bearer {ADMIN}"]
    assert "https://b:8700" in result.stdout
    assert SECRET not in result.output
    result = run("--json", *args, "--endpoint", "192.0.2.2", "--key", SECRET)
    assert SECRET not in result.output
    assert json.loads(result.stdout)["name"] == "B"


def test_peer_create_error_echoing_the_key_is_scrubbed(agent):
    body = {"error": {"code": "invalid", "message": f"key: too weak '{SECRET}'", "field": "key"}}
    agent.on("POST", "/v1/peers", (422, body))
    result = run("peer", "create", "B", "--url", "u", "--endpoint", "e", "--key", SECRET, code=1)
    assert assert_one_error_line(result) == "error: key: too weak '***'"
    assert SECRET not in result.output


def test_peer_create_key_file(agent, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(SECRET + "\n")
    agent.on("POST", "/v1/peers", (201, PEER_B))
    args = ["peer", "create", "B", "--url", "u", "--endpoint", "e", "--key-file", str(key_file)]
    result = run(*args)
    assert agent.calls[0][2]["key"] == SECRET
    assert SECRET not in result.output


@pytest.mark.parametrize("extra", [[], ["--key", SECRET, "--key-file", "-"]])
def test_peer_create_needs_exactly_one_key_source(agent, extra):
    result = run("peer", "create", "B", "--url", "u", "--endpoint", "e", *extra, code=2)
    assert "exactly one of --key or --key-file" in assert_one_error_line(result, code=2)
    assert SECRET not in result.output
    assert agent.calls == []


def test_peer_list_table_and_json(agent):
    peer_c = {**PEER_B, "name": "C", "federation_url": "https://c:8700"}
    agent.on("GET", "/v1/peers", (200, [PEER_B, peer_c]))
    result = run("peer", "list")
    assert "NAME" in result.stdout and "FEDERATION URL" in result.stdout
    assert "https://b:8700" in result.stdout and "https://c:8700" in result.stdout
    result = run("--json", "peer", "list")
    assert json.loads(result.stdout) == [PEER_B, peer_c]
    agent.on("GET", "/v1/peers", (200, []))
    assert "no peers" in run("peer", "list").stdout


def test_peer_show_and_delete_paths(agent):
    agent.on("GET", "/v1/peers/B", (200, PEER_B))
    agent.on("DELETE", "/v1/peers/a%2Fb", (204, None))
    assert "192.0.2.2" in run("peer", "show", "B").stdout
    result = run("peer", "delete", "a/b")
    assert "deleted peer a/b" in result.stdout
    assert [c[:2] for c in agent.calls] == [("GET", "/v1/peers/B"), ("DELETE", "/v1/peers/a%2Fb")]
    assert run("--json", "peer", "delete", "a/b").stdout == ""


def test_link_create_bodies(agent):
    agent.on("POST", "/v1/links", (201, LINK_B))
    run("link", "create", "B", "--local", "192.0.2.1")
    args = ["--remote", "198.51.100.2", "--tunnel-type", "vxlan", "--mtu", "9000", "--disabled"]
    run("link", "create", "B", "--local", "192.0.2.1", *args)
    run("link", "create", "B", "--local", "192.0.2.1", "--psk", SECRET, "--ike-policy", "strong")
    run("link", "create", "B", "--local", "192.0.2.1", "--unencrypted")
    base = {"peer": "B", "local_endpoint": "192.0.2.1"}
    extra = {"remote_endpoint": "198.51.100.2", "tunnel_type": "vxlan", "mtu": 9000}
    bodies = [
        {**base, "encrypted": True, "enabled": True},
        {**base, "encrypted": True, **extra, "enabled": False},
        {**base, "encrypted": True, "psk": SECRET, "ike_policy": "strong", "enabled": True},
        {**base, "encrypted": False, "enabled": True},
    ]
    assert [c[2] for c in agent.calls] == bodies


def test_link_show_and_list_show_state_and_reason(agent):
    agent.on("GET", "/v1/links/B", (200, LINK_B))
    agent.on("GET", "/v1/links", (200, [LINK_B]))
    out = run("link", "show", "B").stdout
    assert "down - no answer from 192.0.2.2" in out
    out = run("link", "list").stdout
    assert "down" in out and "no answer from 192.0.2.2" in out


def test_link_update_and_delete(agent):
    agent.on("PATCH", "/v1/links/B", (200, LINK_B))
    agent.on("DELETE", "/v1/links/B", (204, None))
    run("link", "update", "B", "--disable", "--mtu", "1400")
    run("link", "update", "B", "--enable")
    run("link", "delete", "B")
    assert agent.calls == [
        ("PATCH", "/v1/links/B", {"enabled": False, "mtu": 1400}),
        ("PATCH", "/v1/links/B", {"enabled": True}),
        ("DELETE", "/v1/links/B", None),
    ]
    assert "nothing to update" in err("link", "update", "B", code=2)
    assert len(agent.calls) == 3


def test_agreement_commands(agent):
    agr = {"peer": "B", "projects": ["p1", "p2"], "peer_projects": ["*"]}
    agent.on("POST", "/v1/agreements", (201, {**agr, "max_expansions_per_project": 3}))
    agent.on("GET", "/v1/agreements", (200, [{**agr, "max_expansions_per_project": 10}]))
    agent.on("GET", "/v1/agreements/B", (200, agr))
    agent.on("PATCH", "/v1/agreements/B", (200, agr))
    agent.on("DELETE", "/v1/agreements/B", (204, None))
    args = ["--project", "p1", "--project", "p2", "--peer-project", "*", "--max-expansions", "3"]
    run("agreement", "create", "B", *args)
    out = run("agreement", "list").stdout
    assert "p1, p2" in out and "MAX EXPANSIONS" in out
    run("agreement", "show", "B")
    run("agreement", "update", "B", "--peer-project", "q1")
    run("agreement", "update", "B", "--proxy-service", "network")
    run("agreement", "delete", "B")
    assert agent.calls == [
        ("POST", "/v1/agreements", {**agr, "max_expansions_per_project": 3}),
        ("GET", "/v1/agreements", None),
        ("GET", "/v1/agreements/B", None),
        ("PATCH", "/v1/agreements/B", {"peer_projects": ["q1"]}),
        ("PATCH", "/v1/agreements/B", {"proxy_services": ["network"]}),
        ("DELETE", "/v1/agreements/B", None),
    ]


def test_replica_and_network_lists(agent):
    replica = {"id": "r1", "peer": "B", "project": "B.p1", "vni": 101, "bridge": "icbr101"}
    agent.on("GET", "/v1/replicas", (200, [replica]))
    agent.on("GET", "/v1/networks", (200, [{"name": "net1", "cidr": "10.1.0.0/24"}]))
    out = run("replica", "list").stdout
    assert "icbr101" in out and "B.p1" in out
    out = run("network", "list").stdout
    assert "net1" in out and "10.1.0.0/24" in out


def test_expansion_create_and_show(agent):
    agent.on("POST", "/v1/expansions", (201, exp_with(("B", 101, "active", None))))
    result = run("expansion", "create", "net1", "--peer", "B", "--peer", "C", "--vni", "101")
    assert agent.calls == [
        ("POST", "/v1/expansions", {"network": "net1", "peers": ["B", "C"], "vni": 101})
    ]
    assert "B: active (vni 101)" in result.stdout
    agent.on("GET", "/v1/expansions/e1", (200, exp_with(("C", None, "error", "link to C is down"))))
    assert "C: error - link to C is down" in run("expansion", "show", "e1").stdout
    two = exp_with(("B", 101, "active", None), ("C", 101, "pending", None))
    agent.on("GET", "/v1/expansions", (200, [two]))
    out = run("expansion", "list").stdout
    assert "B: active (vni 101)" in out and "C: pending (vni 101)" in out


def test_expansion_create_wait_until_active(agent):
    agent.on("POST", "/v1/expansions", (201, exp_with(("B", None, "pending", None))))
    agent.on(
        "GET",
        "/v1/expansions/e1",
        (200, exp_with(("B", None, "pending", None))),
        (200, exp_with(("B", 101, "active", None))),
    )
    result = run("--json", "expansion", "create", "net1", "--peer", "B", "--wait", "10")
    assert json.loads(result.stdout)["peers"][0]["status"] == "active"
    assert [c[:2] for c in agent.calls].count(("GET", "/v1/expansions/e1")) == 2


@pytest.mark.parametrize(
    ("peer", "wait", "message"),
    [
        (("B", None, "pending", None), "0.05", "expansion e1 not ready after 0.05s: B: pending"),
        (("B", 7, "error", "refused"), "5", "expansion e1 failed: B: error (vni 7) - refused"),
    ],
)
def test_expansion_create_wait_fails(agent, peer, wait, message):
    agent.on("POST", "/v1/expansions", (201, exp_with(peer)))
    agent.on("GET", "/v1/expansions/e1", (200, exp_with(peer)))
    result = run("expansion", "create", "net1", "--peer", "B", "--wait", wait, code=1)
    assert assert_one_error_line(result) == f"error: {message}"
    assert "B: " in result.stdout  # the last state is shown before the error


def test_expansion_delete_wait_until_gone(agent):
    agent.on("DELETE", "/v1/expansions/e1", (202, exp_with(("B", 101, "deleting", None))))
    agent.on(
        "GET",
        "/v1/expansions/e1",
        (200, exp_with(("B", 101, "deleting", None))),
        (404, {"error": {"code": "not_found", "message": "no expansion e1"}}),
    )
    result = run("expansion", "delete", "e1", "--wait", "10")
    assert "deleted expansion e1" in result.stdout
    assert [c[0] for c in agent.calls] == ["DELETE", "GET", "GET"]


def test_expansion_delete_wait_times_out(agent):
    agent.on("DELETE", "/v1/expansions/e1", (202, None))
    agent.on("GET", "/v1/expansions/e1", (200, exp_with(("B", 101, "deleting", None))))
    line = err("expansion", "delete", "e1", "--wait", "0.05")
    assert line == "error: expansion e1 still there after 0.05s: B: deleting (vni 101)"


RECONCILER = {"passes": 12, "last_pass_at": "t", "last_changes": 0, "last_error": None}
LINKS = [{"peer": "B", "status": {"state": "down", "reason": "tunnel endpoint silent"}}]
STATUS = dict(agent="A", version="0.1", dataplane="fake", reconciler=RECONCILER, links=LINKS)


def test_status_admin(agent):
    agent.on("GET", "/v1/status", (200, STATUS))
    agent.on("GET", "/v1/replicas", (200, [{"id": "r1", "peer": "B", "bridge": "icbr7"}]))
    result = run("--token", ADMIN, "status")
    for text in ("Agent", "Reconciler", "Links", "Replicas", "tunnel endpoint silent", "icbr7"):
        assert text in result.stdout
    assert ADMIN not in result.output
    data = json.loads(run("--json", "status").stdout)
    assert data["agent"] == "A" and data["replicas"][0]["id"] == "r1"


def test_status_project_token_shows_expansions(agent):
    forbidden = {"error": {"code": "forbidden", "message": "admin token required"}}
    agent.on("GET", "/v1/status", (403, forbidden))
    agent.on("GET", "/v1/expansions", (200, [exp_with(("B", 101, "active", None))]))
    result = run("--token", "project-token", "status")
    assert "B: active (vni 101)" in result.stdout
    assert [c[1] for c in agent.calls] == ["/v1/status", "/v1/expansions"]


def test_env_url_and_token(agent):
    agent.on("GET", "/v1/peers", (200, []))
    env = {"INTERCLOUD_URL": "http://a.example:9000", "INTERCLOUD_TOKEN": "tok"}
    run("peer", "list", env=env)
    assert agent.clients == [("http://a.example:9000", "tok", 10.0)]
    assert agent.tokens == ["Bearer tok"]
    run("peer", "list")
    assert agent.clients[-1][:2] == ("https://127.0.0.1:8700", None)


def test_cacert_from_option_or_env(agent, tmp_path):
    agent.on("GET", "/v1/peers", (200, []))
    run("peer", "list", env={"INTERCLOUD_CACERT": "/etc/ca.pem"})
    run("--cacert", "/x/ca.pem", "peer", "list")
    run("peer", "list")
    assert agent.cacerts == ["/etc/ca.pem", "/x/ca.pem", None]


def test_peer_create_and_update_pin_a_ca_file(agent, tmp_path):
    pem = tmp_path / "b-ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    agent.on("POST", "/v1/peers", (201, {"name": "B", "tls_ca_sha256": "AB:CD"}))
    agent.on("PATCH", "/v1/peers/B", (200, {"name": "B", "tls_ca_sha256": None}))
    args = ("--url", "https://198.18.2.2:8700", "--endpoint", "198.18.2.2", "--key", "k" * 16)
    run("peer", "create", "B", *args, "--ca-file", str(pem))
    run("peer", "update", "B", "--no-ca")
    run("peer", "update", "B", "--ca-file", str(pem), "--url", "https://198.18.2.3:8700")
    bodies = [c[2] for c in agent.calls]
    assert bodies[0]["tls_ca"] == pem.read_text()
    assert bodies[1] == {"tls_ca": None}
    assert bodies[2] == {"federation_url": "https://198.18.2.3:8700", "tls_ca": pem.read_text()}
    assert "nothing to change" in err("peer", "update", "B", code=2)


def test_api_error_is_one_line(agent):
    body = {"error": {"code": "invalid", "message": "cidr: invalid CIDR '10.0.0.0/33'"}}
    agent.on("POST", "/v1/expansions", (422, body))
    result = run("expansion", "create", "net1", "--peer", "B", code=1)
    assert assert_one_error_line(result) == "error: cidr: invalid CIDR '10.0.0.0/33'"
    assert result.stdout == ""
    assert err("peer", "show", "Z") == "error: nope"


def test_connection_refused_is_one_line(agent):
    def refuse(request):
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    agent.routes[("GET", "/v1/peers")] = refuse
    line = err("--url", "http://10.9.9.9:8700", "peer", "list")
    assert line == "error: cannot reach the agent at http://10.9.9.9:8700: connection refused"


def test_unexpected_exception_is_one_line(agent):
    def boom(request):
        raise RuntimeError("something\nbroke")

    agent.routes[("GET", "/v1/peers")] = boom
    assert err("peer", "list") == "error: RuntimeError: something broke"


def test_usage_errors_are_one_line_nonzero(agent):
    assert "No such command 'nope'" in err("nope", code=2)
    assert "--local" in err("link", "create", "B", code=2)
    assert "--timeout" in err("--timeout", "x", "peer", "list", code=2)


def test_lab_unavailable_does_not_break_the_cli(agent, monkeypatch):
    monkeypatch.setitem(app.LAZY_COMMANDS, "lab", "intercloud_no_such_mod:lab")
    result = run("--help")
    for name in ("agent", "agreement", "expansion", "lab", "link", "network", "peer", "replica"):
        assert name in result.stdout
    assert "'lab' is not available" in err("lab", "up", "--fast")
    agent.on("GET", "/v1/peers", (200, []))
    run("peer", "list")


def test_lab_is_loaded_lazily(monkeypatch):
    module = types.ModuleType("fake_lab_cli")

    @click.group()
    def lab():
        """Fake lab."""

    @lab.command()
    def up():
        click.echo("lab is up")

    module.lab = lab
    monkeypatch.setitem(sys.modules, "fake_lab_cli", module)
    monkeypatch.setitem(app.LAZY_COMMANDS, "lab", "fake_lab_cli:lab")
    result = run("lab", "up")
    assert result.stdout == "lab is up\n"


def test_agent_command_calls_run(monkeypatch, tmp_path):
    calls = []
    module = types.ModuleType("intercloud.agent")
    module.run = calls.append
    monkeypatch.setitem(sys.modules, "intercloud.agent", module)
    cfg = tmp_path / "agent.toml"
    run("agent", "--config", str(cfg))
    assert calls == [str(cfg)]


def test_main_entry_point_errors(agent, capsys):
    agent.on("GET", "/v1/peers/Z", (404, {"error": {"code": "not_found", "message": "no peer Z"}}))
    with pytest.raises(SystemExit) as info:
        cli_main.main(["peer", "show", "Z"], make_client=agent.make_client)
    assert info.value.code == 1
    assert capsys.readouterr().err == "error: no peer Z\n"


def test_python_dash_m_connection_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = str(Path(intercloud.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "intercloud", "--url", url, "peer", "list"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == f"error: cannot reach the agent at {url}: connection refused\n"


def test_expansion_paths_render_one_line_per_pair():
    from intercloud.cli.tables import paths_cell

    paths = [{"between": ["A", "B"], "via": None}, {"between": ["B", "C"], "via": "A"}]
    assert paths_cell(paths) == "A-B direct\nB-C via A"
    assert paths_cell([]) == "-"


def test_status_shows_the_probes_per_peer_or_why_there_are_none(agent):
    probes = {
        "available": True,
        "reason": None,
        "period_s": 3.0,
        "peers": [
            {
                "peer": "B",
                "tunnels": 3,
                "answering": 2,
                "silent": 1,
                "unanswered": 0,
                "rtt_ms": 0.42,
                "loss": 0.25,
            }
        ],
    }
    agent.on("GET", "/v1/status", (200, {**STATUS, "probes": probes}))
    agent.on("GET", "/v1/replicas", (200, [{"id": "r1", "peer": "B", "tunnel": None}]))
    out = run("--token", ADMIN, "status").stdout
    assert "Probes through the tunnels" in out
    row = next(line for line in out.splitlines() if "0.42" in line)
    cells = row.replace("│", " ").split()
    assert cells == ["B", "3", "2", "1", "0", "0.42", "25%"], row
    off = {"available": False, "reason": "the data plane has no kernel tunnel ports to probe"}
    agent.on("GET", "/v1/status", (200, {**STATUS, "probes": off}))
    out = run("--token", ADMIN, "status").stdout
    assert "off: the data plane has no kernel tunnel ports to probe" in out
