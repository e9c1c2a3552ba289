"""The lab's agents: one per cloud, run as `<agent command> --config <agent.toml>` inside the
cloud's gateway namespace (processes.py keeps their Popen), found again by the pid in
lab.json."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from intercloud.lab import nsexec, nshttp, processes
from intercloud.lab.agentconf import AGENT_PORT
from intercloud.lab.nsexec import LabError
from intercloud.lab.records import LabRecords
from intercloud.lab.state import CloudRecord


class LabAgents(LabRecords):
    def __init__(self, name: str = "icl", state_dir: Path | str | None = None) -> None:
        super().__init__(name, state_dir)
        # The agent program, run as `<agent_command> --config <agent.toml>` in the gateway;
        # `up` records it in lab.json so later (re)starts use the same one.
        self.agent_command: list[str] = [sys.executable, "-m", "intercloud", "agent"]
        # the PostgreSQL directories this object made (lab up --ha), also before lab.json has them
        self._pg_dirs: list[Path] = []

    def _agent_alive(self, c: CloudRecord) -> bool:
        """The cloud's agent runs (with several gateways: at least one of theirs)."""
        if c.gateways:
            return any(self._alive(g.pid, g.config) for g in c.gateways.values())
        return self._alive(c.pid, c.config)

    def _alive(self, pid: int | None, config: str) -> bool:
        """The pid runs and is the agent of that config (guards against pid reuse)."""
        return (
            isinstance(pid, int)
            and processes.pid_alive(pid)
            and config in processes.pid_cmdline(pid)
        )

    def _agent_pids(self, c: CloudRecord) -> list[int]:
        """The running agents' pids of the cloud (each of its gateways')."""
        places = [(g.pid, g.config) for g in c.gateways.values()] or [(c.pid, c.config)]
        return [pid for pid, config in places if pid is not None and self._alive(pid, config)]

    def _spawn(self, letter: str) -> None:
        c = self.cloud(letter)
        if c.gateways:
            for g in c.gateways:
                self._spawn_gateway(letter, g)
            return
        pid = self._start_process(letter, c.ns, c.config, c.log, c.dir)
        with self._edit() as st:
            st.clouds[letter].pid = pid

    def _spawn_gateway(self, letter: str, gateway: str) -> None:
        c = self.cloud(letter)
        g = c.gateways[gateway]
        pid = self._start_process(f"{letter}/{gateway}", g.ns, g.config, g.log, c.dir)
        with self._edit() as st:
            st.clouds[letter].gateways[gateway].pid = pid

    def _start_process(self, label: str, ns: str, config: str, log: str, cwd: str) -> int:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTERCLOUD_")}
        env["PYTHONUNBUFFERED"] = "1"
        command = self.state().agent_command or self.agent_command
        with open(log, "ab") as out:
            out.write(f"--- lab: starting agent {label} at {time.ctime()}\n".encode())
        return processes.start_daemon(
            nsexec.exec_argv(ns, [*command, "--config", config]),
            log=Path(log),
            cwd=cwd,
            env=env,
        )

    def _wait_healthy(self, cloud: str, timeout: float = 30.0) -> None:
        """The agent answers; with several gateways each one does, and then one of them at the
        cloud's address (it became active)."""
        c = self.cloud(cloud)
        deadline = time.monotonic() + timeout
        for g in c.gateways.values():
            label = f"{c.name}/{g.name}"
            wait_answer(label, g.ns, "127.0.0.1", [g.pid], g.log, c.ca, deadline)
        pids = [g.pid for g in c.gateways.values()] or [c.pid]
        wait_answer(c.name, c.ns, c.api_host, pids, c.log, c.ca, deadline)

    def agent_log(self, cloud: str, lines: int | None = None) -> str:
        try:
            text = Path(self.cloud(cloud).log).read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:]) if lines else text

    def start_agent(self, cloud: str, *, wait: bool = True, timeout: float = 30.0) -> int:
        """Start the cloud's agent (with several gateways: each one's); its (first) pid."""
        c = self.cloud(cloud)
        if self._agent_alive(c):
            raise LabError(f"agent {c.name} is already running (pid {self._agent_pids(c)[0]})")
        self._spawn(c.name)
        if wait:
            self._wait_healthy(c.name, timeout)
        return self._agent_pids(self.cloud(cloud))[0]

    def stop_agent(self, cloud: str, timeout: float = 10.0) -> None:
        """SIGTERM, wait up to timeout, then SIGKILL (each gateway's agent)."""
        c = self.cloud(cloud)
        running = self._agent_pids(c)
        if running:
            processes.kill_pids(running, timeout=timeout)
        for pid in [c.pid, *(g.pid for g in c.gateways.values())]:
            if pid and pid not in running:
                processes.reap(pid)
        with self._edit() as st:
            st.clouds[c.name].pid = None
            for g in st.clouds[c.name].gateways.values():
                g.pid = None

    def restart_agent(self, cloud: str, timeout: float = 30.0) -> int:
        self.stop_agent(cloud)
        return self.start_agent(cloud, timeout=timeout)

    def health(self, cloud: str) -> bool:
        """The agent answers HTTP at all (any status) on its port."""
        c = self.cloud(cloud)
        status, _, _ = nshttp.http(
            c.ns, "GET", "/v1/federation/health", host=c.api_host, timeout=2.0, cafile=c.ca
        )
        return status != 0


def _tail(log: str, lines: int = 5) -> str:
    try:
        text = Path(log).read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    last = text.splitlines()[-lines:]
    return " | ".join(line.strip() for line in last if line.strip()) or "(empty)"


def wait_answer(
    label: str,
    ns: str,
    host: str,
    pids: list[int | None],
    log: str,
    cafile: str | None,
    deadline: float,
) -> None:
    while True:
        if not any(processes.pid_alive(pid) for pid in pids):
            raise LabError(f"agent {label} exited during start-up; log {log}: {_tail(log)}")
        left = deadline - time.monotonic()
        status, _, err = nshttp.http(
            ns,
            "GET",
            "/v1/federation/health",
            host=host,
            timeout=2.0,
            wait=max(0.0, min(2.0, left)),
            cafile=cafile,
        )
        if status:
            return
        if time.monotonic() >= deadline:
            raise LabError(
                f"agent {label} did not answer on {host}:{AGENT_PORT} in time ({err}); "
                f"log {log}: {_tail(log)}"
            )
