"""A real Keystone and a real Neutron API for one simulated cloud, inside its namespace (its
controller), on that namespace's loopback. No OpenStack agents run: ports stay unbound, the data
plane is ours. Used by the integration tests and `intercloud lab up --openstack`.

    svc = OpenStackServices("lab-gw-a", Path("/var/lib/.../A/openstack"))
    svc.start()                                   # ≈ 10 s
    project = svc.create_project("p1")
    svc.create_user("u1", "secret", "p1")         # member of p1
    token = svc.token("u1", "secret", "p1")
    net = svc.create_network("p1", "net1", "10.10.0.0/24", "10.10.0.1")
    port = svc.create_port(net["id"], "p1")       # {"id", "mac", "ip"}
    svc.stop()

Calls to the services are plain REST (lab/openstack/api.py, made from inside the namespace: the
test process lives in the host's namespace and cannot reach that loopback); the methods here
are the few the lab needs, as the admin. For users' own tokens and any call, use
`OpenStackApi.for_services(svc)`."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from intercloud.lab import namespaces, nsexec, nshttp, processes
from intercloud.lab.nsexec import LabError
from intercloud.lab.openstack import venvs
from intercloud.lab.openstack.api import OpenStackApi, OpenStackApiError

REGION = "RegionOne"
SERVICE_PROJECT = "service"
AGENT_USER = "intercloud"


def _keystone_conf(workdir: Path) -> str:
    return f"""[DEFAULT]
[database]
connection = sqlite:///{workdir}/keystone.db
[token]
provider = fernet
[fernet_tokens]
key_repository = {workdir}/fernet-keys
[fernet_receipts]
key_repository = {workdir}/fernet-keys
[credential]
key_repository = {workdir}/credential-keys
[identity]
password_hash_rounds = 4
"""


def _neutron_conf(workdir: Path, keystone_url: str, password: str) -> str:
    paste = venvs.venv("neutron") / "etc" / "neutron" / "api-paste.ini"
    return f"""[DEFAULT]
core_plugin = ml2
service_plugins =
auth_strategy = keystone
transport_url = fake://
api_paste_config = {paste}
state_path = {workdir}/neutron-state
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
[database]
connection = sqlite:///{workdir}/neutron.db
[keystone_authtoken]
www_authenticate_uri = {keystone_url}
auth_url = {keystone_url}
auth_type = password
username = neutron
password = {password}
project_name = {SERVICE_PROJECT}
user_domain_name = Default
project_domain_name = Default
[oslo_concurrency]
lock_path = {workdir}/locks
[oslo_messaging_notifications]
driver = noop
[ml2]
type_drivers = vxlan,vlan,flat
tenant_network_types = vxlan
mechanism_drivers = openvswitch
extension_drivers = port_security
[ml2_type_vxlan]
vni_ranges = 1:1000
"""


class OpenStackServices:
    def __init__(
        self,
        ns: str,
        workdir: Path | str,
        keystone_port: int = 5000,
        neutron_port: int = 9696,
    ) -> None:
        self.ns = ns
        self.workdir = Path(workdir)
        self.keystone_port = keystone_port
        self.neutron_port = neutron_port
        self.admin_password = secrets.token_hex(12)
        self.neutron_password = secrets.token_hex(12)
        self.agent_password = secrets.token_hex(12)  # the intercloud agent's service user
        self._pids: dict[str, int] = {}  # service -> its server's pid (started here)

    def record(self) -> dict[str, Any]:
        """What another process needs to call these services (secrets: keep it private)."""
        return {
            "workdir": str(self.workdir),
            "keystone_port": self.keystone_port,
            "neutron_port": self.neutron_port,
            "admin_password": self.admin_password,
            "neutron_password": self.neutron_password,
            "agent_password": self.agent_password,
        }

    @classmethod
    def from_record(cls, ns: str, rec: dict[str, Any]) -> OpenStackServices:
        """A handle on services started by another process (it can call, not stop them)."""
        svc = cls(ns, rec["workdir"], rec["keystone_port"], rec["neutron_port"])
        svc.admin_password = rec["admin_password"]
        svc.neutron_password = rec["neutron_password"]
        svc.agent_password = rec["agent_password"]
        return svc

    @property
    def auth_url(self) -> str:
        return f"http://127.0.0.1:{self.keystone_port}/v3"

    @property
    def neutron_url(self) -> str:
        return f"http://127.0.0.1:{self.neutron_port}/"

    def agent_credentials(self) -> dict[str, str]:
        """What an agent's [cloud] section needs (the password is a secret)."""
        return {
            "auth_url": self.auth_url,
            "username": AGENT_USER,
            "password": self.agent_password,
            "project_name": SERVICE_PROJECT,
            "region_name": REGION,
        }

    # -- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> OpenStackServices:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 90.0) -> float:
        """Start Keystone and Neutron; returns the seconds it took. On failure nothing runs."""
        started = time.monotonic()
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return time.monotonic() - started

    def _start(self, timeout: float) -> None:
        venvs.ensure_all()
        w = self.workdir
        w.mkdir(parents=True, exist_ok=True)
        for sub in ("fernet-keys", "credential-keys", "neutron-state", "locks"):
            (w / sub).mkdir(mode=0o700, exist_ok=True)  # Keystone warns of readable key dirs
        namespaces.set_up(self.ns, "lo")
        shutil.copyfile(venvs.keystone_schema(), w / "keystone.db")
        shutil.copyfile(venvs.neutron_schema(), w / "neutron.db")
        kconf, nconf = w / "keystone.conf", w / "neutron.conf"
        kconf.write_text(_keystone_conf(w))
        nconf.write_text(
            _neutron_conf(w, f"http://127.0.0.1:{self.keystone_port}", self.neutron_password)
        )
        for path in (kconf, nconf):
            path.chmod(0o600)
        # Neutron first: its import (≈ 4 s) overlaps Keystone's set-up, and it needs Keystone
        # only once a request comes.
        self._spawn(
            "neutron",
            "neutron.wsgi.api",
            self.neutron_port,
            {"OS_NEUTRON_CONFIG_FILES": str(nconf), "OS_NEUTRON_CONFIG_DIR": str(w)},
        )
        manage = [str(venvs.venv("keystone") / "bin" / "keystone-manage")]
        manage += ["--config-file", str(kconf)]
        owner = ["--keystone-user", "root", "--keystone-group", "root"]
        url = self.auth_url
        env = {"OS_BOOTSTRAP_PASSWORD": self.admin_password}  # not in argv: `ps` shows argv
        # The two key repositories together; bootstrap wants the fernet keys in place.
        self._check_all(
            env,
            [[*manage, "fernet_setup", *owner], [*manage, "credential_setup", *owner]],
        )
        bootstrap = ["bootstrap", "--bootstrap-region-id", REGION]
        for iface in ("admin", "public", "internal"):
            bootstrap += [f"--bootstrap-{iface}-url", url]
        # Keystone's server imports while bootstrap fills the database: no request reaches the
        # database before bootstrap is done (waiting for an answer asks only for /v3).
        self._spawn(
            "keystone",
            "keystone.wsgi.api",
            self.keystone_port,
            {"OS_KEYSTONE_CONFIG_FILES": str(kconf)},
        )
        self._check_all(env, [[*manage, *bootstrap]])
        deadline = time.monotonic() + timeout
        self._wait("keystone", "/v3", deadline)
        self._bootstrap_catalog()
        self._wait("neutron", "/", deadline)

    def _check_all(self, env: dict[str, str], commands: list[list[str]]) -> None:
        """Run commands in parallel; LabError naming the first that failed, with its output."""
        procs = [
            subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, **env},
            )
            for argv in commands
        ]
        outs = [proc.communicate()[0] for proc in procs]
        for argv, proc, out in zip(commands, procs, outs, strict=True):
            if proc.returncode != 0:
                tail = " | ".join(out.strip().splitlines()[-3:])
                what = next(a for a in argv[3:] if not a.startswith("-"))
                raise LabError(f"keystone-manage {what} failed: {tail}")

    def _spawn(self, name: str, module: str, port: int, env: dict[str, str]) -> None:
        argv = nsexec.program_argv(
            self.ns,
            "intercloud.lab.programs.wsgi_serve",
            str(port),
            module,
            python=venvs.python(name),
        )
        self._pids[name] = processes.start_daemon(
            argv,
            log=self.workdir / f"{name}.log",
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            cwd=self.workdir,
        )

    def _wait(self, name: str, path: str, deadline: float) -> None:
        port = self.keystone_port if name == "keystone" else self.neutron_port
        while True:
            if not processes.pid_alive(self._pids[name]):
                raise LabError(f"{name} exited during start-up: {self.log_tail(name)}")
            status, _, err = nshttp.http(self.ns, "GET", path, port=port, timeout=3.0)
            if status:
                return
            if time.monotonic() > deadline:
                raise LabError(f"{name} did not answer ({err}): {self.log_tail(name)}")
            time.sleep(0.3)

    def log_tail(self, name: str, lines: int = 8) -> str:
        try:
            text = (self.workdir / f"{name}.log").read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM each server's process group, wait, then SIGKILL."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, sig)
            deadline = time.monotonic() + 5
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.05)
        for pid in self._pids.values():
            processes.reap(pid)
        self._pids.clear()

    def pids(self) -> list[int]:
        return [pid for pid in self._pids.values() if processes.pid_alive(pid)]

    # -- calls (REST, as the admin) ---------------------------------------------------------------

    def api(self) -> OpenStackApi:
        """A REST client for these services; close it (or use `with`) when done."""
        return OpenStackApi.for_services(self)

    def _bootstrap_catalog(self) -> None:
        """The service project, Neutron's and the agent's service users (admin role), the
        network endpoint; the `member` and `reader` roles come with bootstrap. Plain REST
        calls, as every call here."""
        with OpenStackApi.for_services(self) as api:
            api.create_project(SERVICE_PROJECT)
            for name, pw in (("neutron", self.neutron_password), (AGENT_USER, self.agent_password)):
                api.create_user(name, pw, SERVICE_PROJECT, "admin")
            for role in ("member", "reader"):
                if api.find("roles", role) is None:
                    api.keystone("POST", "/roles", body={"role": {"name": role}})
            found = api.keystone("GET", "/services?type=network")["services"]
            if found:
                service = found[0]
            else:
                body = {"service": {"name": "neutron", "type": "network", "enabled": True}}
                service = api.keystone("POST", "/services", body=body)["service"]
            if not api.keystone("GET", f"/endpoints?service_id={service['id']}")["endpoints"]:
                for iface in ("public", "internal", "admin"):
                    endpoint = {
                        "service_id": service["id"],
                        "interface": iface,
                        "url": self.neutron_url,
                        "region_id": REGION,
                    }
                    api.keystone("POST", "/endpoints", body={"endpoint": endpoint})

    def create_project(self, name: str) -> str:
        with self.api() as api:
            return api.create_project(name)["id"]

    def create_user(self, name: str, password: str, project: str, role: str = "member") -> str:
        with self.api() as api:
            return api.create_user(name, password, project, role)["id"]

    def token(self, user: str, password: str, project: str) -> str:
        with self.api() as api:
            return api.user_token(user, password, project)

    def admin_token(self) -> str:
        return self.token("admin", self.admin_password, "admin")

    def create_network(self, project: str, name: str, cidr: str, gateway: str) -> dict[str, Any]:
        """A network with one IPv4 subnet in `project` (made by the admin for it)."""
        with self.api() as api:
            pid = _project_id(api, project)
            net = api.create_network(api.admin_token(), name, cidr, gateway, project_id=pid)
        pools = net["subnet"]["allocation_pools"]
        return {
            "id": net["id"],
            "subnet_id": net["subnet_id"],
            "project_id": pid,
            "pools": [[p["start"], p["end"]] for p in pools],
        }

    def create_port(
        self, network_id: str, project: str | None = None, name: str = ""
    ) -> dict[str, Any]:
        """A VM's port: Neutron picks the MAC and the address (from this cloud's pool); `mtu`
        is its network's, as Neutron's DHCP would tell the VM."""
        with self.api() as api:
            token = api.admin_token()
            extra = {"project_id": _project_id(api, project)} if project else {}
            port = api.create_port(token, network_id, name=name, **extra)
            mtu = api.get(token, "networks", network_id)["mtu"]
        return {"id": port["id"], "mac": port["mac"], "ip": port["ip"], "mtu": mtu}

    def delete_port(self, port_id: str) -> None:
        """Remove a port (gone already: fine)."""
        with self.api() as api, contextlib.suppress(OpenStackApiError):
            api.delete(api.admin_token(), "ports", port_id)


def _project_id(api: OpenStackApi, name: str) -> str:
    found = api.find("projects", name)
    if found is None:
        raise LabError(f"no project {name}")
    return found["id"]
