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

Calls to the services are made by short Python programs (openstacksdk) run inside the
namespace: the test process lives in the host's namespace and cannot reach that loopback.
For plain REST with users' own tokens (dicts back, any headers), see lab/openstack_api.py:
`OpenStackApi.for_services(svc)`."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from intercloud.lab import namespaces, nsexec, nshttp, openstack_env
from intercloud.lab.nsexec import LabError
from intercloud.lab.openstack_api import OpenStackApi

REGION = "RegionOne"
SERVICE_PROJECT = "service"
AGENT_USER = "intercloud"

_SERVE = """
import sys
port, module = int(sys.argv[1]), sys.argv[2]
sys.argv = [sys.argv[0]]  # Neutron parses argv as its own options
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass
import importlib
app = importlib.import_module(module).application
make_server("127.0.0.1", port, app, server_class=WSGIServer, handler_class=Quiet).serve_forever()
"""

_SDK_PRELUDE = """
import json, sys, warnings
warnings.filterwarnings("ignore")
from openstack.config import get_cloud_region
from openstack.connection import Connection
params = json.loads(sys.stdin.read())
def connect(user, password, project, domain="Default"):
    return Connection(config=get_cloud_region(
        auth_type="password",
        auth={"auth_url": params["auth_url"], "username": user, "password": password,
              "project_name": project, "user_domain_name": domain,
              "project_domain_name": domain},
        region_name=params["region"], load_yaml_config=False, load_envvars=False))
admin = connect("admin", params["admin_password"], "admin")
result = None
"""


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
    paste = openstack_env.venv("neutron") / "etc" / "neutron" / "api-paste.ini"
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
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

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
        openstack_env.ensure_all()
        w = self.workdir
        w.mkdir(parents=True, exist_ok=True)
        for sub in ("fernet-keys", "credential-keys", "neutron-state", "locks"):
            (w / sub).mkdir(mode=0o700, exist_ok=True)  # Keystone warns of readable key dirs
        namespaces.set_up(self.ns, "lo")
        shutil.copyfile(openstack_env.keystone_schema(), w / "keystone.db")
        shutil.copyfile(openstack_env.neutron_schema(), w / "neutron.db")
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
        manage = [str(openstack_env.venv("keystone") / "bin" / "keystone-manage")]
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
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        argv = [str(openstack_env.python(name)), "-c", _SERVE, str(port), module]
        self._procs[name] = subprocess.Popen(
            nsexec.exec_argv(self.ns, argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=self.workdir,
            start_new_session=True,
        )
        log.close()

    def _wait(self, name: str, path: str, deadline: float) -> None:
        port = self.keystone_port if name == "keystone" else self.neutron_port
        while True:
            proc = self._procs[name]
            if proc.poll() is not None:
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
        for proc in self._procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for proc in self._procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self._procs.clear()

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs.values() if p.poll() is None]

    # -- calls (openstacksdk, inside the namespace) -----------------------------------------------

    def sdk(self, script: str, timeout: float = 60.0, **params: Any) -> Any:
        """Run `script` with `admin` (an admin Connection), `connect(user, password, project)`
        and `params` defined; it sets `result`, returned here (JSON)."""
        body = {
            **params,
            "auth_url": self.auth_url,
            "region": REGION,
            "admin_password": self.admin_password,
        }
        code = _SDK_PRELUDE + script + "\nprint(json.dumps(result))\n"
        proc = subprocess.run(
            nsexec.exec_argv(self.ns, [sys.executable, "-c", code]),
            input=json.dumps(body),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise LabError(f"openstack call in {self.ns} failed: {tail}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def _bootstrap_catalog(self) -> None:
        """The service project, Neutron's and the agent's service users (admin role), the
        network endpoint; the `member` and `reader` roles come with bootstrap. Plain REST
        calls (openstack_api): importing openstacksdk alone would take longer."""
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
        return self.sdk(
            """
idp = admin.identity
p = idp.find_project(params["name"], domain_id="default") or idp.create_project(
    name=params["name"], domain_id="default")
result = p.id
""",
            name=name,
        )

    def create_user(self, name: str, password: str, project: str, role: str = "member") -> str:
        return self.sdk(
            """
idp = admin.identity
project = idp.find_project(params["project"], domain_id="default")
user = idp.find_user(params["name"], domain_id="default") or idp.create_user(
    name=params["name"], password=params["password"], domain_id="default",
    default_project_id=project.id)
idp.assign_project_role_to_user(project, user, idp.find_role(params["role"]))
result = user.id
""",
            name=name,
            password=password,
            project=project,
            role=role,
        )

    def token(self, user: str, password: str, project: str) -> str:
        return self.sdk(
            "result = connect(params['user'], params['password'], params['project'])"
            ".session.get_token()",
            user=user,
            password=password,
            project=project,
        )

    def admin_token(self) -> str:
        return self.token("admin", self.admin_password, "admin")

    def create_network(self, project: str, name: str, cidr: str, gateway: str) -> dict:
        """A network with one IPv4 subnet in `project` (made by the admin for it)."""
        return self.sdk(
            """
pid = admin.identity.find_project(params["project"], domain_id="default").id
net = admin.network.create_network(name=params["name"], project_id=pid)
sn = admin.network.create_subnet(network_id=net.id, project_id=pid, ip_version=4,
    cidr=params["cidr"], gateway_ip=params["gateway"], name=params["name"] + "-subnet")
result = {"id": net.id, "subnet_id": sn.id, "project_id": pid,
          "pools": [[p["start"], p["end"]] for p in sn.allocation_pools]}
""",
            project=project,
            name=name,
            cidr=cidr,
            gateway=gateway,
        )

    def create_port(self, network_id: str, project: str | None = None, name: str = "") -> dict:
        """A VM's port: Neutron picks the MAC and the address (from this cloud's pool); `mtu`
        is its network's, as Neutron's DHCP would tell the VM."""
        return self.sdk(
            """
kw = {"network_id": params["network_id"], "name": params["name"],
      "device_owner": "compute:nova"}
if params["project"]:
    kw["project_id"] = admin.identity.find_project(params["project"], domain_id="default").id
port = admin.network.create_port(**kw)
result = {"id": port.id, "mac": port.mac_address, "ip": port.fixed_ips[0]["ip_address"],
          "mtu": admin.network.get_network(params["network_id"]).mtu}
""",
            network_id=network_id,
            project=project,
            name=name,
        )
