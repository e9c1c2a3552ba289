"""A real agent process (`python -m intercloud agent`) on loopback: plain HTTP, fake data
plane and IPsec, standalone cloud with one project; for what only a process shows (its
resident memory, its start-up log)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.waiting import wait_for


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AgentProcess:
    def __init__(self, tmp: Path, database: str = "", log_level: str = "warning") -> None:
        self.port = free_port()
        self.admin_token = secrets.token_hex(16)
        self.project_token = secrets.token_hex(16)
        config = tmp / "agent.toml"
        config.write_text(
            f"""
[agent]
name = "A"
listen = "127.0.0.1"
port = {self.port}
database = "{database or f"sqlite:///{tmp}/agent.db"}"
admin_token = "{self.admin_token}"
plain_http = true
log_level = "{log_level}"
reconcile_interval = 3600.0

[dataplane]
driver = "fake"

[ipsec]
driver = "fake"

[[projects]]
name = "p1"
token = "{self.project_token}"
"""
        )
        os.chmod(config, 0o600)
        self.log_path = tmp / "agent.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "intercloud", "agent", "--config", str(config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        try:
            wait_for(self._answers, 30, 0.2, "the agent to answer")
        except AssertionError:
            self.stop()
            raise AssertionError(self.log_path.read_text()) from None

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError("the agent exited")
        try:
            httpx.get(f"{self.url}/openapi.json", timeout=2).raise_for_status()
        except httpx.HTTPError:
            return False
        return True

    def rss(self) -> int:
        return rss(self.proc.pid)

    def stop(self) -> None:
        stop(self.proc)
        self.log.close()


def stop(proc: subprocess.Popen) -> None:
    """End a process: asked first, killed after 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
