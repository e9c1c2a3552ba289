"""HTTPS everywhere: the agent's TLS config, its certificate reloaded on SIGHUP (a real agent
process), config file permissions, and federation calls with a pinned CA per peer."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import warnings
from pathlib import Path

import httpx
import pytest

from intercloud import config, tls
from intercloud.agent import pinned_ca
from intercloud.api.server import SHUTDOWN_GRACE
from intercloud.api_client import ApiClient
from intercloud.errors import IntercloudError, Invalid, PeerError
from intercloud.federation.peers import Federation, PeerRef
from intercloud.lab import pki
from tests.functional.federation_harness import Router, make_agent
from tests.unit import agent_process
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def _served_fingerprint(port: int, ca: Path) -> str:
    ctx = tls.client_context(ca.read_text())
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s,
    ):
        der = s.getpeercert(binary_form=True)
    return tls.fingerprint(ssl.DER_cert_to_PEM_cert(der))


def _write_config(path: Path, agent: dict) -> Path:
    lines = ["[agent]", *(f"{k} = {v!r}".replace("'", '"') for k, v in agent.items())]
    lines += ["", "[dataplane]", 'driver = "fake"', "", "[ipsec]", 'driver = "none"', ""]
    pki.write_private(path, "\n".join(lines).replace("True", "true"))
    return path


class AgentProcess:
    def __init__(self, tmp: Path, name: str, **agent: object) -> None:
        self.port = agent_process.free_port()
        self.log = tmp / f"{name}.log"
        self.config = _write_config(
            tmp / f"{name}.toml",
            {
                "name": name,
                "port": self.port,
                "database": f"sqlite:///{tmp}/{name}.db",
                "admin_token": "t" * 32,
                **agent,
            },
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        env = {k: v for k, v in env.items() if not k.startswith("INTERCLOUD_")}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "intercloud", "agent", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def wait_listening(self, timeout: float = 30.0) -> None:
        wait_for(self._listening, timeout, 0.1, f"the agent to listen (log: {self.log})")

    def _listening(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        agent_process.stop(self.proc)


@pytest.fixture
def cloud_b(tmp_path):
    """Agent B serving TLS with a certificate from B's own CA."""
    b = pki.write_cloud(tmp_path / "pki-b", "B", ["127.0.0.1"])
    agent = AgentProcess(tmp_path, "B", tls_cert=str(b.cert), tls_key=str(b.key))
    agent.wait_listening()
    yield agent, b
    agent.stop()


# --- config ---------------------------------------------------------------------------------


BASE = {"name": "A", "admin_token": "a" * 32}


def test_config_needs_a_certificate_or_explicit_plain_http():
    with pytest.raises(Invalid) as exc:
        config.parse({"agent": BASE}, env={})
    assert exc.value.field == "agent.tls_cert"
    assert "agent.plain_http = true" in exc.value.message and "\n" not in exc.value.message
    assert config.parse({"agent": {**BASE, "plain_http": True}}, env={}).agent.plain_http
    cfg = config.parse({"agent": {**BASE, "tls_cert": "/c.pem", "tls_key": "/k.pem"}}, env={})
    assert (cfg.agent.tls_cert, cfg.agent.tls_key) == ("/c.pem", "/k.pem")
    with pytest.raises(Invalid) as exc:
        config.parse({"agent": {**BASE, "plain_http": True, "tls_cert": "/c.pem"}}, env={})
    assert exc.value.field == "agent.plain_http"


def test_a_config_readable_by_others_is_refused(tmp_path):
    path = _write_config(tmp_path / "agent.toml", {**BASE, "plain_http": True})
    assert config.load(path, env={}).agent.name == "A"  # 0600
    for mode in (0o644, 0o640, 0o604, 0o620):
        path.chmod(mode)
        with pytest.raises(Invalid) as exc:
            config.load(path, env={})
        assert exc.value.message == (
            f"config: {path} is accessible by group/other (mode {mode:04o}) and holds secrets; "
            f"make it 0600 (chmod 600 {path})"
        )


def test_a_tls_key_readable_by_others_is_refused(tmp_path):
    b = pki.write_cloud(tmp_path / "pki", "A", ["127.0.0.1"])
    path = _write_config(
        tmp_path / "agent.toml", {**BASE, "tls_cert": str(b.cert), "tls_key": str(b.key)}
    )
    assert config.load(path, env={}).agent.tls_key == str(b.key)
    b.key.chmod(0o644)
    with pytest.raises(Invalid) as exc:
        config.load(path, env={})
    assert exc.value.field == "agent.tls_key" and "make it 0600" in exc.value.message


def test_a_certificate_that_does_not_load_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(Invalid) as exc:
        tls.ServerTLS(str(bad), None)
    assert exc.value.field == "agent.tls_cert" and str(bad) in exc.value.message


# --- the agent serves TLS ---------------------------------------------------------------------


def test_agent_serves_tls_12_plus_and_reloads_its_certificate_on_sighup(cloud_b, tmp_path):
    agent, b = cloud_b
    first = _served_fingerprint(agent.port, b.ca)
    assert first == tls.fingerprint(b.cert.read_text())
    # TLS 1.1 is refused by the agent (this client could speak it: SECLEVEL 0)
    old = tls.client_context(b.ca.read_text())
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1_1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    with (
        pytest.raises(ssl.SSLError),  # the agent ends the handshake
        socket.create_connection(("127.0.0.1", agent.port), timeout=5) as raw,
    ):
        old.wrap_socket(raw, server_hostname="127.0.0.1")
    old.maximum_version = ssl.TLSVersion.TLSv1_2  # the same client with 1.2: accepted
    with (
        socket.create_connection(("127.0.0.1", agent.port), timeout=5) as raw,
        old.wrap_socket(raw, server_hostname="127.0.0.1") as accepted,
    ):
        assert accepted.version() == "TLSv1.2"
    # the API answers over HTTPS with INTERCLOUD_CACERT-style trust
    with ApiClient(f"https://127.0.0.1:{agent.port}", "t" * 32, cacert=str(b.ca)) as c:
        assert c.get("/v1/status")["agent"] == "B"
    # a broken pair on SIGHUP: the served certificate stays, one ERROR line says why
    saved = b.key.read_text()
    b.key.write_text("garbage\n")
    agent.proc.send_signal(signal.SIGHUP)
    refused = "SIGHUP: config agent.tls_cert: cannot load"
    wait_for(lambda: refused in agent.log.read_text(), 10, 0.1, "the SIGHUP to be handled")
    assert _served_fingerprint(agent.port, b.ca) == first
    assert "SIGHUP: config agent.tls_cert: cannot load" in agent.log.read_text()
    b.key.write_text(saved)
    # swap in a new certificate from the same CA, SIGHUP: new handshakes get it
    ca = pki.Issued(b.ca.read_text(), (b.ca.parent / "ca.key").read_text())
    new = pki.issue(ca, "agent B (renewed)", ["127.0.0.1"])
    b.cert.write_text(new.cert)
    b.key.write_text(new.key)
    agent.proc.send_signal(signal.SIGHUP)
    renewed = "the renewed certificate to be served"
    wait_for(lambda: _served_fingerprint(agent.port, b.ca) != first, 10, 0.1, renewed)
    assert _served_fingerprint(agent.port, b.ca) == tls.fingerprint(new.cert)
    assert agent.proc.poll() is None  # SIGHUP did not stop it
    assert "SIGHUP: TLS certificate reloaded" in agent.log.read_text()


def test_plain_http_only_when_asked_with_one_warning(tmp_path):
    agent = AgentProcess(tmp_path, "P", plain_http=True)
    try:
        agent.wait_listening()
        r = httpx.get(f"http://127.0.0.1:{agent.port}/v1/federation/health")
        assert r.status_code in (200, 401)
    finally:
        agent.stop()
    warnings = [line for line in agent.log.read_text().splitlines() if " WARNING " in line]
    assert len(warnings) == 1 and "plain HTTP" in warnings[0], warnings


# --- the CLI's client -------------------------------------------------------------------------


def test_client_without_the_ca_says_the_certificate_is_not_trusted(cloud_b):
    agent, _ = cloud_b
    url = f"https://127.0.0.1:{agent.port}"
    with ApiClient(url, "t" * 32) as c, pytest.raises(IntercloudError) as exc:
        c.get("/v1/status")
    assert "certificate" in exc.value.message and "\n" not in exc.value.message
    with pytest.raises(IntercloudError) as exc:
        ApiClient(url, cacert="/nonexistent/ca.pem")
    assert exc.value.message.startswith("--cacert /nonexistent/ca.pem:")


# --- federation over HTTPS with a pinned CA -----------------------------------------------------


def test_pem_checks_at_the_boundary():
    ca = pki.make_ca("x")
    two = ca.cert + pki.make_ca("y").cert
    assert tls.check_pem(two).count("BEGIN CERTIFICATE") == 2
    for bad in ("", 7, "hello", ca.key, ca.cert + ca.key, ca.cert.replace("M", "?", 3)):
        with pytest.raises(Invalid) as exc:
            tls.check_pem(bad)
        assert exc.value.field == "tls_ca" and "PRIVATE" not in exc.value.message
    with pytest.raises(Invalid):
        tls.check_pem(ca.cert * 40)  # too long


def test_peer_api_pins_a_ca_shows_its_fingerprint_and_refuses_http(tmp_path):
    a = make_agent(tmp_path, Router(), "A", 1)
    ca = pki.make_ca("B CA")
    body = {
        "name": "B",
        "federation_url": "https://198.18.2.2:8700",
        "underlay_endpoint": "198.18.2.2",
        "key": "k" * 32,
        "tls_ca": ca.cert,
    }
    r = a.admin("POST", "/v1/peers", body)
    assert r.status_code == 201, r.text
    assert r.json()["tls_ca_sha256"] == tls.fingerprint(ca.cert)
    assert "tls_ca" not in r.json()
    r = a.admin("POST", "/v1/peers", {**body, "name": "C", "tls_ca": ca.key})
    assert r.status_code == 422 and r.json()["error"]["field"] == "tls_ca"
    assert "PRIVATE" not in r.text
    r = a.admin("PATCH", "/v1/peers/B", {"tls_ca": None})
    assert r.status_code == 200 and r.json()["tls_ca_sha256"] is None
    assert pinned_ca(a.ctx.store, "B") is None
    # an agent serving TLS refuses plain-HTTP peers
    a.ctx.cfg.agent.plain_http = False
    r = a.admin("PATCH", "/v1/peers/B", {"federation_url": "http://198.18.2.2:8700"})
    assert r.status_code == 422 and "https://" in r.json()["error"]["message"]
    a.ctx.store.dispose()


def test_federation_client_refuses_http_without_plain_http():
    with pytest.raises(PeerError) as exc:
        Federation("A").peer(PeerRef("B", "http://198.18.2.2:8700", "k" * 32)).request("GET", "/x")
    assert "not https://" in exc.value.message


def test_a_peer_with_another_certificate_makes_its_link_down_with_a_clear_reason(cloud_b, tmp_path):
    agent, b = cloud_b
    a = make_agent(tmp_path, Router(), "A", 1)
    a.ctx.reconciler.federation = Federation("A", pinned=lambda p: pinned_ca(a.ctx.store, p))
    wrong = pki.make_ca("not B's CA")
    peer = {
        "name": "B",
        "federation_url": f"https://127.0.0.1:{agent.port}",
        "underlay_endpoint": "198.18.2.2",
        "key": "k" * 32,
        "tls_ca": wrong.cert,
    }
    assert a.admin("POST", "/v1/peers", peer).status_code == 201
    link = {"peer": "B", "local_endpoint": "198.18.1.2", "encrypted": False}
    assert a.admin("POST", "/v1/links", link).status_code == 201
    a.ctx.reconciler.reconcile_once()
    status = a.admin("GET", "/v1/links/B").json()["status"]
    assert status["state"] == "down"
    expected = (
        f"TLS: certificate of peer B not trusted (pinned CA sha256 {tls.fingerprint(wrong.cert)})"
    )
    assert expected in status["reason"], status
    # pinned to B's real CA, TLS passes: B answers (it does not know A, so it refuses us)
    assert a.admin("PATCH", "/v1/peers/B", {"tls_ca": b.ca.read_text()}).status_code == 200
    a.ctx.reconciler.memory.healthy_at.clear()
    a.ctx.reconciler.reconcile_once()
    status = a.admin("GET", "/v1/links/B").json()["status"]
    assert "TLS" not in status["reason"] and "refused" in status["reason"], status
    a.ctx.store.dispose()


def test_a_peer_holding_a_pooled_connection_does_not_hold_up_the_agents_stop(cloud_b):
    """Peers keep one pooled connection to us: on SIGTERM an idle one held uvicorn's TLS
    shutdown past 10 s (the agent was then killed); now the agent ends within its grace."""
    agent, b = cloud_b
    federation = Federation("A", pinned=lambda _: b.ca.read_text())
    peer = federation.peer(PeerRef("B", f"https://127.0.0.1:{agent.port}", "k" * 32))
    try:
        with pytest.raises(PeerError, match="refused our signature"):
            peer.health()  # B does not know A; the connection stays in A's pool
        agent.proc.terminate()
        assert agent.proc.wait(timeout=SHUTDOWN_GRACE + 5) is not None
    finally:
        federation.close()


def test_one_context_per_peer_and_pem(monkeypatch):
    pems = {"B": pki.make_ca("b").cert, "C": None}
    federation = Federation("A", pinned=pems.get)
    first = federation.peer(PeerRef("B", "https://b", "k"))
    assert federation.peer(PeerRef("B", "https://b", "k")) is first
    assert federation.peer(PeerRef("C", "https://c", "k")) is not first
    pems["B"] = pki.make_ca("b2").cert
    assert federation.peer(PeerRef("B", "https://b", "k")) is not first
    assert len(federation._clients) == 2
