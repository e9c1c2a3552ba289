"""The lab: a federation of N clouds in network namespaces on one host.

    <name>-wan          the underlay router (ip_forward=1); interface wan-<c> per cloud
    <name>-gw-<c>       cloud <C>'s gateway: eth0 198.18.<i>.2/24, tenant bridges tn-net1/tn-net2,
                        and its agent (python -m intercloud agent) listening on :8700
    <name>-<c>-<vm>     a "VM": eth0 joined by a veth (v<c><vm>) to a bridge in its gateway
    <name>-nat-<c>      for a cloud behind NAT: its NAT router (see underlay.py)

With encryption (the default) each gateway also runs its own charon (strongSwan), with its own
config, VICI socket and /run, and the agents encrypt every link with IPsec.

Every namespace starts with `<name>-`, so `down()` finds them all even without lab.json.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from intercloud.lab import namespaces, nsexec, nshttp, pki, processes, underlay
from intercloud.lab.charon import MAX_LANES, Charon
from intercloud.lab.nsexec import LabError
from intercloud.lab.ops import PROJECTS, LabOps

LAB_ROOT = Path("/var/lib/intercloud-lab")  # not under /run: each charon mounts its own /run
AGENT_PORT = 8700

NETWORKS = (("net1", "p1", "10.10.0.0/24"), ("net2", "p2", "10.10.0.0/24"))
_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")


def _toml(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


def tls_settings(cloud_dir: Path, letter: str, ips: Sequence[str]) -> dict[str, str]:
    """The cloud's own CA and its agent's certificate (SANs: `ips` and 127.0.0.1), made in
    <cloud dir>/tls; the [agent] keys that serve them."""
    made = pki.write_cloud(cloud_dir / "tls", letter, [*ips, "127.0.0.1"])
    return {"tls_cert": str(made.cert), "tls_key": str(made.key)}


def _agent_toml(
    letter: str,
    cloud_dir: Path,
    admin_token: str,
    projects: dict[str, str],
    vici_socket: str | None,
    networks: Sequence[tuple[str, str, str, str]] | None = None,
    lane_sockets: Sequence[str] = (),
    tls: dict[str, str] | None = None,
) -> str:
    """The agent's config; `networks`: (name, project, cidr, interface), by default the
    lab's tenant networks on their bridges; `tls`: its tls_cert/tls_key."""
    agent = {
        "name": letter,
        "listen": "0.0.0.0",
        "port": AGENT_PORT,
        "database": f"sqlite:///{cloud_dir / 'state.db'}",
        "admin_token": admin_token,
        "reconcile_interval": 5,
        **(tls or {}),
    }
    lines = [
        "[agent]",
        *(f"{k} = {_toml(v)}" for k, v in agent.items()),
        "",
        "[dataplane]",
        'driver = "linux"',
        'prefix = "ic"',
        "",
        "[ipsec]",
        *(
            [
                'driver = "strongswan"',
                f"vici_socket = {_toml(vici_socket)}",
                f"lanes = {json.dumps(list(lane_sockets))}",
            ]
            if vici_socket
            else ['driver = "none"']
        ),
        "",
    ]
    for name, token in projects.items():
        lines += ["[[projects]]", f"name = {_toml(name)}", f"token = {_toml(token)}", ""]
    if networks is None:
        networks = [(net, project, cidr, f"tn-{net}") for net, project, cidr in NETWORKS]
    for net, project, cidr, interface in networks:
        lines += [
            "[[networks]]",
            f"name = {_toml(net)}",
            f"project = {_toml(project)}",
            f"cidr = {_toml(cidr)}",
            f"interface = {_toml(interface)}",
            "",
        ]
    return "\n".join(lines)


# Charons per gateway in `lab up`: a second one raised encrypted throughput by 21-29 % on two
# cores (README, Benchmarks); one core has nothing to share.
DEFAULT_LANES = 2 if (os.cpu_count() or 1) >= 2 else 1


def lane_dir(charon_dir: Path, lane: int) -> Path:
    """Lane 0's charon lives in the cloud's charon dir, lane k's in <charon dir>/lane<k>."""
    return charon_dir if lane == 0 else charon_dir / f"lane{lane}"


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (it creates network namespaces)")


class Lab(LabOps):
    """A federation of clouds in network namespaces; its record is <state_dir>/lab.json."""

    def __init__(self, name: str = "icl", state_dir: Path | str | None = None) -> None:
        if not _NAME_RE.match(name):
            raise LabError(
                f"lab name must be 1-8 lowercase letters or digits, starting with a "
                f"letter (got {name!r})"
            )
        self.name = name
        self.state_dir = Path(state_dir) if state_dir else LAB_ROOT / name
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        # The agent program, run as `<agent_command> --config <agent.toml>` in the gateway;
        # `up` records it in lab.json so later (re)starts use the same one.
        self.agent_command: list[str] = [sys.executable, "-m", "intercloud", "agent"]

    # --- names and records ------------------------------------------------------------------------

    @property
    def wan_ns(self) -> str:
        return f"{self.name}-wan"

    def gw_ns(self, cloud: str) -> str:
        return f"{self.name}-gw-{cloud.lower()}"

    def vm_ns(self, cloud: str, vm: str) -> str:
        return f"{self.name}-{cloud.lower()}-{vm}"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "lab.json"

    def exists(self) -> bool:
        return self.state_file.exists()

    def state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            raise LabError(
                f"lab {self.name} is not up (no {self.state_file}); run lab up"
            ) from None

    def _save(self, st: dict[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(st, indent=2) + "\n")
        os.replace(tmp, self.state_file)

    @contextmanager
    def _edit(self) -> Iterator[dict[str, Any]]:
        """Read-modify-write lab.json under a lock (several CLI calls may run at once)."""
        self.state()  # a clear error if the lab is not up
        with open(self.state_dir / "lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            st = self.state()
            yield st
            self._save(st)

    @property
    def clouds(self) -> list[str]:
        return list(self.state()["clouds"])

    def cloud(self, cloud: str) -> dict[str, Any]:
        clouds = self.state()["clouds"]
        try:
            return clouds[cloud.upper()]
        except KeyError:
            raise LabError(
                f"lab {self.name} has no cloud {cloud!r} (clouds: {', '.join(clouds)})"
            ) from None

    def ip(self, cloud: str) -> str:
        """The cloud's underlay address (its gateway's eth0)."""
        return self.cloud(cloud)["ip"]

    def token(self, cloud: str, which: str | None = "admin") -> str | None:
        """`admin`, a project name (`p1`), None (no token) or any other string, used verbatim."""
        c = self.cloud(cloud)
        if which is None:
            return None
        if which == "admin":
            return c["admin_token"]
        return c["projects"].get(which, which)

    # --- up / down --------------------------------------------------------------------------------

    def up(
        self,
        clouds: int = 3,
        *,
        start_agents: bool = True,
        encrypt: bool = True,
        nat: Sequence[str] = (),
        timeout: float = 30.0,
        lanes: int = 1,
    ) -> dict[str, Any]:
        """Build the lab; all or nothing (on any failure everything made is torn down).
        `encrypt`: one charon per gateway and IPsec on every link; `lanes`: charons per
        gateway sharing the encryption (drivers/ipsec/lanes.py); `nat`: the clouds (letters)
        that sit behind a NAT router."""
        require_root()
        if not 1 <= clouds <= 26:
            raise LabError(f"clouds must be between 1 and 26 (got {clouds})")
        if not 1 <= lanes <= MAX_LANES:
            raise LabError(f"lanes must be between 1 and {MAX_LANES} (got {lanes})")
        leftovers = namespaces.list_namespaces(self.name + "-")
        if self.exists() or leftovers:
            raise LabError(
                f"lab {self.name} already up; run lab down"
                + (f" (namespaces: {', '.join(leftovers)})" if leftovers else "")
            )
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            st: dict[str, Any] = {
                "name": self.name,
                "created_at": time.time(),
                "wan_ns": self.wan_ns,
                "agent_command": list(self.agent_command),
                "clouds": {},
                "vms": {},
                "peerings": [],
                "encrypt": encrypt,
                "lanes": lanes if encrypt else 1,
            }
            self._save(st)
            namespaces.add_namespace(self.wan_ns)
            namespaces.sysctl(self.wan_ns, "net.ipv4.ip_forward", "1")
            for i in range(1, clouds + 1):
                letter = chr(ord("A") + i - 1)
                st["clouds"][letter] = self._build_cloud(
                    letter, i, nat=letter in {n.upper() for n in nat}, encrypt=encrypt
                )
                self._save(st)
            if encrypt:
                for c in st["clouds"].values():
                    self._start_charons(c)
            if start_agents:
                for letter in st["clouds"]:
                    self._spawn(letter)
                for letter in st["clouds"]:
                    self._wait_healthy(letter, timeout)
        except BaseException:
            with suppress(LabError):
                self.down()
            raise
        return self.state()

    def _lanes(self) -> int:
        return int(self.state().get("lanes", 1)) if self.exists() else 1

    def _start_charons(self, c: dict[str, Any]) -> None:
        """The gateway's charon and those of its further lanes (each in its own directory)."""
        base = Path(c["charon_dir"])
        for k in range(self._lanes()):
            Charon(c["ns"], lane_dir(base, k), lane=k).start()

    def _build_cloud(self, letter: str, index: int, *, nat: bool, encrypt: bool) -> dict[str, Any]:
        gw = self.gw_ns(letter)
        addrs = underlay.build(self.name, self.wan_ns, letter, index, gw, nat=nat)
        for net, _, _ in NETWORKS:
            namespaces.add_bridge(gw, f"tn-{net}")
        return self._cloud_record(letter, index, gw, {**addrs, "nat": nat}, encrypt)

    def _cloud_record(
        self,
        letter: str,
        index: int,
        ns: str,
        addrs: dict[str, Any],
        encrypt: bool,
        networks: Sequence[tuple[str, str, str, str]] | None = None,
    ) -> dict[str, Any]:
        """Write the agent's config; the cloud's entry in lab.json."""
        cloud_dir = self.state_dir / letter
        cloud_dir.mkdir(parents=True, exist_ok=True)
        admin_token = secrets.token_hex(16)
        projects = {p: secrets.token_hex(16) for p in PROJECTS}
        config = cloud_dir / "agent.toml"
        charon_dir = cloud_dir / "charon"
        vici = str(charon_dir / "charon.vici") if encrypt else None
        lanes = [str(lane_dir(charon_dir, k) / "charon.vici") for k in range(1, self._lanes())]
        tls = tls_settings(cloud_dir, letter, [addrs["ip"], addrs["local_ip"]])
        pki.write_private(
            config,
            _agent_toml(letter, cloud_dir, admin_token, projects, vici, networks, lanes, tls),
        )
        nets = networks or [(n, p, c, f"tn-{n}") for n, p, c in NETWORKS]
        return {
            "name": letter,
            "index": index,
            "ns": ns,
            "nat": False,
            **addrs,
            "charon_dir": str(charon_dir) if encrypt else None,
            "url": f"https://{addrs['ip']}:{AGENT_PORT}",
            "ca": str(cloud_dir / "tls" / "ca.pem"),
            "admin_token": admin_token,
            "projects": projects,
            "networks": {n: {"project": p, "cidr": c, "bridge": i} for n, p, c, i in nets},
            "dir": str(cloud_dir),
            "config": str(config),
            "log": str(cloud_dir / "agent.log"),
            "pid": None,
        }

    def add_standalone(
        self, host: str, *, vm: str = "user", network: str = "net1", timeout: float = 30.0
    ) -> str:
        """A user-run (standalone) agent in a VM of cloud `host`: the VM sits on `host`'s
        tenant `network` (its NIC `ens1`, which the agent expands, as its network `home` of
        project p1) and has a public address on the WAN, as a public cloud's VM would. It is
        recorded as one more cloud (the next letter); `lab down` removes it. Returns its
        letter."""
        st = self.state()
        host = self.cloud(host)["name"]
        if network not in self.cloud(host)["networks"]:
            raise LabError(f"cloud {host} has no network {network!r}")
        index = len(st["clouds"]) + 1
        letter = chr(ord("A") + index - 1)
        ns = self.vm_ns(host, vm)
        encrypt = bool(st.get("encrypt"))
        try:
            addrs = underlay.build(self.name, self.wan_ns, letter, index, ns, nat=False)
            namespaces.add_veth(ns, "ens1", self.cloud(host)["ns"], f"v{host.lower()}{vm}")
            namespaces.set_up(ns, "ens1")
            namespaces.set_up(
                self.cloud(host)["ns"], f"v{host.lower()}{vm}", master=f"tn-{network}"
            )
            cidr = self.cloud(host)["networks"][network]["cidr"]
            c = self._cloud_record(
                letter, index, ns, addrs, encrypt, networks=[("home", "p1", cidr, "ens1")]
            )
            c["standalone_in"] = f"{host}/{vm}"
            with self._edit() as s:
                s["clouds"][letter] = c
            if encrypt:
                self._start_charons(c)
            self._spawn(letter)
            self._wait_healthy(letter, timeout)
        except BaseException:
            with suppress(LabError):
                namespaces.delete_namespace(ns)
            raise
        return letter

    def down(self) -> list[str]:
        """Kill the agents and every process in `<name>-*` namespaces, delete those namespaces
        and the state dir. Idempotent; works without lab.json. Returns the deleted namespaces."""
        require_root()
        try:
            clouds = self.state()["clouds"].values()
        except (LabError, ValueError):
            clouds = []
        processes.kill_pids([c["pid"] for c in clouds if self._agent_alive(c)])
        for proc in self._procs.values():
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
        self._procs.clear()
        deleted, failed = [], []
        for ns in namespaces.list_namespaces(self.name + "-"):
            try:
                namespaces.delete_namespace(ns)
                deleted.append(ns)
            except LabError as exc:
                failed.append(str(exc))
        shutil.rmtree(self.state_dir, ignore_errors=True)
        if failed:
            raise LabError("; ".join(failed))
        return deleted

    # --- agents -----------------------------------------------------------------------------------

    def _agent_alive(self, c: dict[str, Any]) -> bool:
        """The recorded pid runs and is this cloud's agent (guards against pid reuse)."""
        pid = c.get("pid")
        return (
            isinstance(pid, int)
            and processes.pid_alive(pid)
            and c["config"] in processes.pid_cmdline(pid)
        )

    def _spawn(self, letter: str) -> None:
        c = self.cloud(letter)
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTERCLOUD_")}
        env["PYTHONUNBUFFERED"] = "1"
        command = self.state().get("agent_command") or self.agent_command
        argv = [*command, "--config", c["config"]]
        with open(c["log"], "ab") as log:
            log.write(f"--- lab: starting agent {letter} at {time.ctime()}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                nsexec.exec_argv(c["ns"], argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=c["dir"],
                env=env,
                start_new_session=True,
            )
        self._procs[letter] = proc
        with self._edit() as st:
            st["clouds"][letter]["pid"] = proc.pid

    def _wait_healthy(self, cloud: str, timeout: float = 30.0) -> None:
        c = self.cloud(cloud)
        deadline = time.monotonic() + timeout
        while True:
            if not processes.pid_alive(c["pid"]):
                raise LabError(
                    f"agent {c['name']} exited during start-up; log {c['log']}: {self._tail(c)}"
                )
            left = deadline - time.monotonic()
            status, _, err = nshttp.http(
                c["ns"],
                "GET",
                "/v1/federation/health",
                timeout=2.0,
                wait=max(0.0, min(2.0, left)),
                cafile=c.get("ca"),
            )
            if status:
                return
            if time.monotonic() >= deadline:
                raise LabError(
                    f"agent {c['name']} did not answer on :{AGENT_PORT} within "
                    f"{timeout:.0f}s ({err}); log {c['log']}: {self._tail(c)}"
                )

    def _tail(self, c: dict[str, Any], lines: int = 5) -> str:
        text = self.agent_log(c["name"], lines=lines).strip()
        return " | ".join(line.strip() for line in text.splitlines()) or "(empty)"

    def agent_log(self, cloud: str, lines: int | None = None) -> str:
        try:
            text = Path(self.cloud(cloud)["log"]).read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:]) if lines else text

    def start_agent(self, cloud: str, *, wait: bool = True, timeout: float = 30.0) -> int:
        c = self.cloud(cloud)
        if self._agent_alive(c):
            raise LabError(f"agent {c['name']} is already running (pid {c['pid']})")
        self._spawn(c["name"])
        if wait:
            self._wait_healthy(c["name"], timeout)
        return self.cloud(cloud)["pid"]

    def stop_agent(self, cloud: str, timeout: float = 10.0) -> None:
        """SIGTERM, wait up to timeout, then SIGKILL."""
        c = self.cloud(cloud)
        if self._agent_alive(c):
            processes.kill_pids([c["pid"]], timeout=timeout)
        proc = self._procs.pop(c["name"], None)
        if proc:
            proc.wait(timeout=5)
        with self._edit() as st:
            st["clouds"][c["name"]]["pid"] = None

    def restart_agent(self, cloud: str, timeout: float = 30.0) -> int:
        self.stop_agent(cloud)
        return self.start_agent(cloud, timeout=timeout)

    def health(self, cloud: str) -> bool:
        """The agent answers HTTP at all (any status) on its port."""
        c = self.cloud(cloud)
        status, _, _ = nshttp.http(
            c["ns"], "GET", "/v1/federation/health", timeout=2.0, cafile=c.get("ca")
        )
        return status != 0

    # --- commands and status ----------------------------------------------------------------------

    def namespace(self, target: str) -> str:
        """`A` (the cloud's gateway), `A/vm1` (a VM) or `wan` (the underlay router)."""
        if target == "wan":
            return self.wan_ns
        cloud, _, vm = target.partition("/")
        c = self.cloud(cloud)
        if not vm:
            return c["ns"]
        if f"{c['name']}/{vm}" not in self.state()["vms"]:
            raise LabError(f"no VM {c['name']}/{vm}")
        return self.vm_ns(c["name"], vm)

    def exec(
        self,
        target: str,
        argv: Sequence[str],
        *,
        token: str | None = "admin",
        capture: bool = True,
        check: bool = False,
        timeout: float | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run argv in a cloud's gateway (with INTERCLOUD_URL/_TOKEN/_CACERT set) or a VM."""
        ns = self.namespace(target)
        env = dict(os.environ)
        if target != "wan" and "/" not in target:
            c = self.cloud(target)
            scheme = "https" if c.get("ca") else "http"
            env["INTERCLOUD_URL"] = f"{scheme}://127.0.0.1:{AGENT_PORT}"
            env.pop("INTERCLOUD_CACERT", None)
            if c.get("ca"):
                env["INTERCLOUD_CACERT"] = c["ca"]
            env.pop("INTERCLOUD_TOKEN", None)
            tok = self.token(target, token)
            if tok:
                env["INTERCLOUD_TOKEN"] = tok
        return subprocess.run(
            nsexec.exec_argv(ns, argv),
            capture_output=capture,
            text=True,
            check=check,
            timeout=timeout,
            input=input,
            env=env,
        )

    def status(self) -> dict[str, Any]:
        present = namespaces.list_namespaces(self.name + "-")
        out: dict[str, Any] = {
            "name": self.name,
            "state_dir": str(self.state_dir),
            "up": self.exists(),
            "namespaces": present,
            "clouds": [],
            "vms": [],
            "peerings": [],
        }
        if not out["up"]:
            return out
        st = self.state()
        for letter, c in st["clouds"].items():
            alive = self._agent_alive(c)
            out["clouds"].append(
                {
                    "name": letter,
                    "namespace": c["ns"],
                    "present": c["ns"] in present,
                    "ip": c["ip"],
                    "url": c["url"],
                    "ca": c.get("ca"),
                    "pid": c["pid"],
                    "alive": alive,
                    "healthy": alive and self.health(letter),
                }
            )
        for key, vm in st["vms"].items():
            out["vms"].append({"target": key, **vm, "present": vm["ns"] in present})
        out["peerings"] = [p["clouds"] for p in st["peerings"]]
        return out
