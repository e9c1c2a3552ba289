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

    def _agent_alive(self, c: CloudRecord) -> bool:
        """The recorded pid runs and is this cloud's agent (guards against pid reuse)."""
        pid = c.pid
        return (
            isinstance(pid, int)
            and processes.pid_alive(pid)
            and c.config in processes.pid_cmdline(pid)
        )

    def _spawn(self, letter: str) -> None:
        c = self.cloud(letter)
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTERCLOUD_")}
        env["PYTHONUNBUFFERED"] = "1"
        command = self.state().agent_command or self.agent_command
        with open(c.log, "ab") as log:
            log.write(f"--- lab: starting agent {letter} at {time.ctime()}\n".encode())
        pid = processes.start_daemon(
            nsexec.exec_argv(c.ns, [*command, "--config", c.config]),
            log=Path(c.log),
            cwd=c.dir,
            env=env,
        )
        with self._edit() as st:
            st.clouds[letter].pid = pid

    def _wait_healthy(self, cloud: str, timeout: float = 30.0) -> None:
        c = self.cloud(cloud)
        deadline = time.monotonic() + timeout
        while True:
            if not processes.pid_alive(c.pid):
                raise LabError(
                    f"agent {c.name} exited during start-up; log {c.log}: {self._tail(c)}"
                )
            left = deadline - time.monotonic()
            status, _, err = nshttp.http(
                c.ns,
                "GET",
                "/v1/federation/health",
                timeout=2.0,
                wait=max(0.0, min(2.0, left)),
                cafile=c.ca,
            )
            if status:
                return
            if time.monotonic() >= deadline:
                raise LabError(
                    f"agent {c.name} did not answer on :{AGENT_PORT} within "
                    f"{timeout:.0f}s ({err}); log {c.log}: {self._tail(c)}"
                )

    def _tail(self, c: CloudRecord, lines: int = 5) -> str:
        text = self.agent_log(c.name, lines=lines).strip()
        return " | ".join(line.strip() for line in text.splitlines()) or "(empty)"

    def agent_log(self, cloud: str, lines: int | None = None) -> str:
        try:
            text = Path(self.cloud(cloud).log).read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:]) if lines else text

    def start_agent(self, cloud: str, *, wait: bool = True, timeout: float = 30.0) -> int:
        c = self.cloud(cloud)
        if self._agent_alive(c):
            raise LabError(f"agent {c.name} is already running (pid {c.pid})")
        self._spawn(c.name)
        if wait:
            self._wait_healthy(c.name, timeout)
        pid = self.cloud(cloud).pid
        assert pid is not None
        return pid

    def stop_agent(self, cloud: str, timeout: float = 10.0) -> None:
        """SIGTERM, wait up to timeout, then SIGKILL."""
        c = self.cloud(cloud)
        if self._agent_alive(c):
            assert c.pid is not None
            processes.kill_pids([c.pid], timeout=timeout)
        elif c.pid:
            processes.reap(c.pid)
        with self._edit() as st:
            st.clouds[c.name].pid = None

    def restart_agent(self, cloud: str, timeout: float = 30.0) -> int:
        self.stop_agent(cloud)
        return self.start_agent(cloud, timeout=timeout)

    def health(self, cloud: str) -> bool:
        """The agent answers HTTP at all (any status) on its port."""
        c = self.cloud(cloud)
        status, _, _ = nshttp.http(c.ns, "GET", "/v1/federation/health", timeout=2.0, cafile=c.ca)
        return status != 0
