"""The lab on the real kernel: namespaces, underlay, tenant bridges, VMs, agents, teardown.

Most tests run without the real agent (`up(start_agents=False)`, or a tiny stand-in agent
that answers HTTP), so they test the lab itself; the last one needs `python -m intercloud agent`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography import x509

from intercloud import config, errors
from intercloud.lab import Lab, LabError, namespaces, nsexec

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2"),
]

# A stand-in agent: answers every request, 401 without the admin token (like the real one).
FAKE_AGENT = textwrap.dedent(
    """
    import json, ssl, sys, tomllib
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    cfg = tomllib.load(open(sys.argv[sys.argv.index("--config") + 1], "rb"))
    token = cfg["agent"]["admin_token"]

    class H(BaseHTTPRequestHandler):
        def answer(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(n)) if n else None
            if self.headers.get("Authorization") != "Bearer " + token:
                status, out = 401, {"error": {"code": "unauthorized", "message": "no token"}}
            elif self.path == "/v1/replicas":
                status, out = 200, [{"peer": "B", "network": "net1", "bridge": "tn-net2"}]
            else:
                status = 201 if self.command == "POST" else 200
                out = {"agent": cfg["agent"]["name"], "method": self.command,
                       "path": self.path, "body": body}
            data = json.dumps(out).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        do_GET = do_POST = do_DELETE = do_PATCH = answer
        def log_message(self, *args):
            pass

    print("fake agent", cfg["agent"]["name"], "starting", flush=True)
    server = ThreadingHTTPServer(("0.0.0.0", cfg["agent"]["port"]), H)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # the lab calls its agents over HTTPS
    tls.load_cert_chain(cfg["agent"]["tls_cert"], cfg["agent"]["tls_key"])
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.serve_forever()
    """
)


def _name() -> str:
    return "t" + secrets.token_hex(3)[:5]


@pytest.fixture
def make_lab(tmp_path):
    labs: list[Lab] = []

    def make(**kw) -> Lab:
        lb = Lab(_name(), state_dir=tmp_path / f"lab{len(labs)}", **kw)
        labs.append(lb)
        return lb

    yield make
    for lb in labs:
        lb.down()
        assert namespaces.list_namespaces(lb.name + "-") == []


@pytest.fixture
def fake_agent(tmp_path) -> list[str]:
    script = tmp_path / "fake_agent.py"
    script.write_text(FAKE_AGENT)
    return [sys.executable, str(script)]


def ping(lb: Lab, target: str, ip: str) -> bool:
    return lb.exec(target, ["ping", "-c1", "-W1", ip]).returncode == 0


def test_underlay_through_the_wan_router(make_lab):
    lb = make_lab()
    st = lb.up(3, start_agents=False)
    assert sorted(st.clouds) == ["A", "B", "C"]
    assert set(namespaces.list_namespaces(lb.name + "-")) == {
        f"{lb.name}-wan",
        f"{lb.name}-gw-a",
        f"{lb.name}-gw-b",
        f"{lb.name}-gw-c",
    }
    assert lb.ip("B") == "198.18.2.2"
    assert ping(lb, "A", "198.18.2.2")
    assert ping(lb, "C", "198.18.1.2")
    assert ping(lb, "wan", "198.18.3.2")
    fwd = lb.exec("wan", ["sysctl", "-n", "net.ipv4.ip_forward"], check=True).stdout
    assert fwd.strip() == "1"
    links = lb.exec("A", ["ip", "-j", "link", "show", "type", "bridge"], check=True).stdout
    assert {link["ifname"] for link in json.loads(links)} == {"tn-net1", "tn-net2"}
    cfg = config.load(lb.cloud("A").config, env={})
    assert cfg.agent.name == "A" and cfg.agent.admin_token == lb.token("A")
    # TLS: A's own CA, its certificate for its addresses, keys 0600
    tls_dir = Path(lb.cloud("A").dir) / "tls"
    assert (cfg.agent.tls_cert, cfg.agent.tls_key, cfg.agent.plain_http) == (
        str(tls_dir / "agent.pem"),
        str(tls_dir / "agent.key"),
        False,
    )
    assert lb.cloud("A").url == "https://198.18.1.2:8700"
    for name in ("agent.key", "ca.key", "../agent.toml"):
        assert (tls_dir / name).stat().st_mode & 0o777 == 0o600, name
    cert = x509.load_pem_x509_certificate((tls_dir / "agent.pem").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {
        "198.18.1.2",
        "127.0.0.1",
    }
    assert [(n.name, n.project, n.cidr, n.interface) for n in cfg.networks] == [
        ("net1", "p1", "10.10.0.0/24", "tn-net1"),
        ("net2", "p2", "10.10.0.0/24", "tn-net2"),
    ]
    with pytest.raises(LabError, match="already up; run lab down"):
        lb.up(2, start_agents=False)
    assert ping(lb, "A", "198.18.2.2")  # the failed second `up` left the lab alone


def test_vms_on_local_tenant_bridges(make_lab):
    lb = make_lab()
    lb.up(2, start_agents=False)
    vm1 = lb.add_vm("A", "vm1", "10.10.0.11/24", network="net1")
    lb.add_vm("A", "vm2", "10.10.0.12/24", network="net1", mac="02:00:00:00:00:12")
    lb.add_vm("A", "vm3", "10.10.0.13/24", network="net2")
    lb.add_vm("B", "vm1", "10.10.0.12/24", network="net1")
    assert vm1.ns == f"{lb.name}-a-vm1" and vm1.bridge == "tn-net1"
    assert ping(lb, "A/vm1", "10.10.0.12")
    assert "02:00:00:00:00:12" in lb.exec("A/vm2", ["ip", "link", "show", "eth0"]).stdout
    assert not ping(lb, "A/vm1", "10.10.0.13")  # net2 is another bridge
    assert [v["target"] for v in lb.status()["vms"]] == ["A/vm1", "A/vm2", "A/vm3", "B/vm1"]
    with pytest.raises(LabError, match="already exists"):
        lb.add_vm("A", "vm1", "10.10.0.14/24", network="net1")
    with pytest.raises(LabError, match="no network"):
        lb.add_vm("A", "vm9", "10.10.0.14/24", network="net7")
    lb.remove_vm("A", "vm2")
    assert not namespaces.exists(f"{lb.name}-a-vm2")
    assert not ping(lb, "A/vm1", "10.10.0.12")
    with pytest.raises(LabError, match="no VM"):
        lb.exec("A/vm2", ["true"])


def test_down_after_a_crash_without_lab_json(make_lab):
    lb = make_lab()
    lb.up(2, start_agents=False)
    lb.add_vm("B", "web", "10.10.0.5/24", network="net1")
    sleeper = subprocess.Popen(nsexec.exec_argv(f"{lb.name}-gw-a", ["sleep", "300"]))
    lb.state_file.unlink()
    deleted = Lab(lb.name, state_dir=lb.state_dir).down()
    assert len(deleted) == 4
    assert namespaces.list_namespaces(lb.name + "-") == []
    sleeper.wait(timeout=5)  # processes in the namespaces were killed (else: TimeoutExpired)
    assert not lb.state_dir.exists()
    assert lb.down() == []  # idempotent


def test_up_is_all_or_nothing(make_lab, tmp_path):
    lb = make_lab()
    lb.agent_command = [sys.executable, "-c", "import sys; sys.exit('agent boom')"]
    with pytest.raises(LabError, match="exited during start-up.*agent boom"):
        lb.up(2)
    assert namespaces.list_namespaces(lb.name + "-") == []
    assert not lb.state_dir.exists()


def test_agents_api_and_lifecycle(make_lab, fake_agent):
    lb = make_lab()
    lb.agent_command = fake_agent
    lb.up(2)
    st = lb.status()
    assert [(c["name"], c["alive"], c["healthy"]) for c in st["clouds"]] == [
        ("A", True, True),
        ("B", True, True),
    ]
    assert lb.api("B", "GET", "/v1/status")["agent"] == "B"
    out = lb.api("A", "POST", "/v1/peers", {"name": "B"})
    assert out["body"] == {"name": "B"}
    with pytest.raises(errors.Unauthorized) as exc:
        lb.api("A", "GET", "/v1/peers", token="p1")
    assert exc.value.status == 401 and "no token" in str(exc.value)
    assert lb.api_raw("A", "GET", "/v1/peers", token=None)[0] == 401
    assert lb.replica_bridge("A", "B/net1", timeout=5) == "tn-net2"
    env = lb.exec("A", ["env"], token="p2").stdout
    assert f"INTERCLOUD_TOKEN={lb.token('A', 'p2')}" in env
    assert "INTERCLOUD_URL=https://127.0.0.1:8700" in env
    assert f"INTERCLOUD_CACERT={lb.cloud('A').ca}" in env

    lb.stop_agent("B")
    assert not lb.status()["clouds"][1]["alive"]
    with pytest.raises(LabError, match="did not answer"):
        lb.api("B", "GET", "/v1/status")
    lb.start_agent("B")
    old = lb.cloud("A").pid
    assert lb.restart_agent("A") != old
    assert lb.health("A") and lb.health("B")
    assert "fake agent A starting" in lb.agent_log("A")
    with pytest.raises(LabError, match="already running"):
        lb.start_agent("A")


def test_cli(tmp_path):
    name = _name()
    env = {**os.environ, "INTERCLOUD_LAB": name}
    cli = [sys.executable, "-m", "intercloud.lab.cli"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args], capture_output=True, text=True, env=env, timeout=60)

    try:
        r = run("up", "--clouds", "2", "--no-agents")
        assert r.returncode == 0, r.stderr
        st = json.loads(run("status", "--json").stdout)
        assert [c["name"] for c in st["clouds"]] == ["A", "B"]
        r = run("exec", "A", "--", "ping", "-c1", "-W1", "198.18.2.2")
        assert r.returncode == 0 and "1 received" in r.stdout
        assert run("exec", "B", "--", "sh", "-c", "exit 7").returncode == 7
        assert (
            run("vm", "add", "A", "vm1", "--ip", "10.10.0.1/24", "--network", "net1").returncode
            == 0
        )
        r = run("vm", "add", "A", "vm2", "--ip", "10.10.0.2/24")
        assert r.returncode != 0 and "exactly one of" in r.stderr
        r = run("exec", "Q", "--", "true")
        assert (
            r.returncode == 1
            and r.stderr.strip() == "Error: lab " + name + " has no cloud 'Q' (clouds: A, B)"
        )
        assert run("vm", "rm", "A", "vm1").returncode == 0
        r = run("up", "--no-agents")
        assert r.returncode == 1 and "already up" in r.stderr
    finally:
        r = run("down")
    assert r.returncode == 0, r.stderr
    assert namespaces.list_namespaces(name + "-") == []


def _real_agent() -> bool:
    cmd = [sys.executable, "-m", "intercloud", "agent", "--help"]
    return subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0


@pytest.mark.skipif(not _real_agent(), reason="python -m intercloud agent is not available yet")
def test_real_agents_peer(make_lab):
    lb = make_lab()
    lb.up(2)
    lb.peer("A", "B")
    link = lb.api("A", "GET", "/v1/links/B")
    assert link["peer"] == "B" and link["remote_endpoint"] == lb.ip("B")
    assert lb.api("B", "GET", "/v1/agreements/A")["peer_projects"] == ["p1", "p2"]
    assert Path(lb.cloud("A").log).exists()


@pytest.mark.skipif(not _real_agent(), reason="python -m intercloud agent is not available yet")
def test_real_agents_vm_on_a_replica(make_lab):
    lb = make_lab()
    lb.up(2)
    lb.peer("A", "B", projects=["p1"])
    lb.api("A", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]}, token="p1")
    lb.add_vm("A", "vm1", "10.10.0.11/24", network="net1")
    vm2 = lb.add_vm("B", "vm2", "10.10.0.12/24", replica_of=("A", "net1"), timeout=30)
    assert vm2.bridge == lb.api("B", "GET", "/v1/replicas")[0]["bridge"]
    r = lb.exec("B/vm2", ["ping", "-c1", "-W2", "10.10.0.11"])
    for _ in range(10):  # the tunnel may need a reconciler pass or two
        if r.returncode == 0:
            break
        r = lb.exec("B/vm2", ["ping", "-c1", "-W1", "10.10.0.11"])
    assert r.returncode == 0, r.stdout + lb.agent_log("B", lines=20)
