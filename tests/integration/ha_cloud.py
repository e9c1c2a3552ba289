"""One cloud with two gateways for the HA tests: namespaces `db` (a real PostgreSQL), `gw1` and
`gw2` (an agent each, [ha] enabled, sharing that database), all on one underlay switch
(namespace `sw`, a bridge). The cloud's address is 198.18.200.1; a sampler reads which gateways
hold it every 100 ms."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from intercloud.config import AgentSection, Config, DataplaneSection, IpsecSection
from intercloud.domain.ha_settings import HaSection
from intercloud.lab import agentconf, nshttp
from tests.conftest import _pg_bin
from tests.integration.namespaces import Namespaces, ip
from tests.waiting import wait_for

SUBNET = "198.18.200"
CLOUD_ADDRESS = f"{SUBNET}.1"
DB_ADDRESS = f"{SUBNET}.10"
GATEWAYS = ("gw1", "gw2")


@dataclass
class HaCloud:
    namespaces: Namespaces
    workdir: Path
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    ns: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    procs: list[subprocess.Popen] = field(default_factory=list)
    samples: list[tuple[float, frozenset[str]]] = field(default_factory=list)
    _sampling: threading.Event = field(default_factory=threading.Event)

    # ---- building
    def build(self) -> None:
        sw = self.ns["sw"] = self.namespaces("hasw")
        ip("-n", sw, "link", "add", "br0", "type", "bridge")
        ip("-n", sw, "link", "set", "br0", "up")
        for i, role in enumerate(("db", *GATEWAYS)):
            ns = self.ns[role] = self.namespaces(f"ha{role}")
            self.namespaces.veth(ns, "u0", sw, f"p{i}")
            ip("-n", sw, "link", "set", f"p{i}", "master", "br0", "up")
            host = 10 + i  # db .10, gw1 .11, gw2 .12: each host's own address
            ip("-n", ns, "addr", "add", f"{SUBNET}.{host}/24", "dev", "u0")
            ip("-n", ns, "link", "set", "u0", "up")
        self._start_postgres()

    def _start_postgres(self) -> None:
        initdb, postgres = _pg_bin("initdb"), _pg_bin("postgres")
        assert initdb and postgres, "PostgreSQL server binaries not found (make install)"
        shutil.chown(self.workdir, "postgres", "postgres")
        data = self.workdir / "pg"
        as_pg = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [*as_pg, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
            check=True,
            capture_output=True,
        )
        with open(data / "pg_hba.conf", "a") as f:
            f.write(f"host all all {SUBNET}.0/24 trust\n")
        argv = [postgres, "-D", str(data), "-h", DB_ADDRESS, "-k", str(self.workdir)]
        self.procs.append(
            subprocess.Popen(
                ["ip", "netns", "exec", self.ns["db"], *as_pg, *argv, "-c", "fsync=off"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_for(self._postgres_answers, 30, 0.2, "PostgreSQL in its namespace")
        with psycopg.connect(**self._local(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE ic")

    def _local(self) -> dict:
        return {"host": str(self.workdir), "user": "postgres", "dbname": "postgres"}

    def _postgres_answers(self) -> bool:
        try:
            with psycopg.connect(**self._local(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def config(self, gateway: str) -> Path:
        cfg = Config(
            agent=AgentSection(
                name="A",
                listen="0.0.0.0",
                database=f"postgresql+psycopg://postgres@{DB_ADDRESS}:5432/ic",
                admin_token=self.token,
                plain_http=True,
                reconcile_interval=5,
            ),
            dataplane=DataplaneSection(driver="linux", prefix="ic"),
            ipsec=IpsecSection(driver="none"),
            ha=HaSection(
                enabled=True, gateway=gateway, address=f"{CLOUD_ADDRESS}/24", interface="u0"
            ),
        )
        path = self.workdir / f"{gateway}.toml"
        agentconf.write(path, cfg)
        return path

    def start_agent(self, gateway: str) -> None:
        log = open(self.workdir / f"{gateway}.log", "ab")  # noqa: SIM115 - the agent's stdout
        argv = [sys.executable, "-m", "intercloud", "agent", "--config", str(self.config(gateway))]
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns[gateway], *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        self.procs.append(proc)
        self.pids[gateway] = proc.pid
        wait_for(lambda: self.status(gateway) is not None, 30, 0.2, f"agent {gateway}")

    def log(self, gateway: str) -> str:
        return (self.workdir / f"{gateway}.log").read_text(errors="replace")

    # ---- observing
    def status(self, gateway: str) -> dict | None:
        code, body, _ = nshttp.http(
            self.ns[gateway], "GET", "/v1/status", token=self.token, timeout=5
        )
        return body if code == 200 else None

    def holders(self) -> frozenset[str]:
        """The gateways whose namespace holds the cloud's address now."""
        held = set()
        for gw in GATEWAYS:
            out = ip("-n", self.ns[gw], "-4", "-o", "addr", "show").stdout
            if f" {CLOUD_ADDRESS}/" in out:
                held.add(gw)
        return frozenset(held)

    def start_sampling(self) -> None:
        def sample() -> None:
            while not self._sampling.wait(0.1):
                self.samples.append((time.monotonic(), self.holders()))

        threading.Thread(target=sample, daemon=True).start()

    def wait_holder(self, gateway: str, timeout: float = 10.0) -> float:
        """Seconds until `gateway` alone holds the address (polled every 20 ms)."""
        started = time.monotonic()
        wait_for(lambda: self.holders() == {gateway}, timeout, 0.02, f"{gateway} to hold")
        return time.monotonic() - started

    def kill(self, gateway: str) -> None:
        os.kill(self.pids[gateway], signal.SIGKILL)

    def cut_database(self, gateway: str, cut: bool = True) -> None:
        ns = self.ns[gateway]
        if not cut:
            subprocess.run(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "hacut"])
            return
        rules = (
            "table inet hacut {\n"
            f" chain o {{ type filter hook output priority 0; ip daddr {DB_ADDRESS} drop; }}\n"
            f" chain i {{ type filter hook input priority 0; ip saddr {DB_ADDRESS} drop; }}\n"
            "}\n"
        )
        subprocess.run(
            ["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules, text=True, check=True
        )

    def mac(self, ns: str) -> str:
        out = ip("-n", ns, "-o", "link", "show", "u0").stdout
        return out.split("link/ether ")[1].split()[0]

    def neighbour_mac(self) -> str | None:
        out = ip("-n", self.ns["db"], "neigh", "show", CLOUD_ADDRESS).stdout.split()
        return out[out.index("lladdr") + 1] if "lladdr" in out else None

    def close(self) -> None:
        self._sampling.set()
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)


def make(namespaces: Namespaces) -> HaCloud:
    workdir = Path(tempfile.mkdtemp(prefix="intercloud-ha-"))
    return HaCloud(namespaces, workdir)
