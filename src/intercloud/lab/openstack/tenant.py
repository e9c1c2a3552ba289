"""A tenant of an OpenStack lab cloud with the unmodified `openstack` CLI (the pinned
python-openstackclient venv): its clouds.yaml and the command run in the cloud's gateway
namespace (where the cloud's Keystone and agent are reachable).

The clouds.yaml recipe (docs/openstack.md): one entry per cloud the user works in, all
authenticating against the home cloud's Keystone with the user's own credentials;
`<home>-in-<peer>` points the network (and compute) endpoints at the home agent's proxy, so
`openstack --os-cloud A-in-B port create ...` acts in B, in the replica of the user's project.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from intercloud.lab import nsexec
from intercloud.lab.nsexec import LabError
from intercloud.lab.openstack import venvs

if TYPE_CHECKING:
    from intercloud.lab.openstack.lab import OpenStackLab

PROXIED = ("network", "compute")
REPO = Path(__file__).resolve().parents[4]  # the checkout whose plugin is installed


def clouds_yaml(
    lab: OpenStackLab,
    home: str,
    project: str,
    peers: tuple[str, ...] = (),
    name: str | None = None,
) -> dict[str, Any]:
    """The `clouds:` of a member of `project` in `home` (`admin`: the cloud's admin): `name`
    (default: the cloud's letter) and `<name>-in-<peer>` for each peer (proxied endpoints)."""
    c = lab.cloud(home)
    assert c.openstack is not None
    if project == "admin":
        user = {"user": "admin", "password": c.openstack["admin_password"]}
    else:
        user = c.openstack["users"][project]
    base = {
        "auth": {
            "auth_url": f"http://127.0.0.1:{c.openstack['keystone_port']}/v3",
            "username": user["user"],
            "password": user["password"],
            "project_name": project,
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
        "region_name": "RegionOne",
        "identity_api_version": 3,
        "cacert": c.ca,  # the agent's TLS CA (Keystone answers plain HTTP in the lab)
    }
    name = name or c.name
    clouds = {name: base}
    for peer in peers:
        p = lab.cloud(peer).name
        overrides = {
            f"{service}_endpoint_override": f"{c.url}/v1/proxy/{p}/{service}/"
            for service in PROXIED
        }
        clouds[f"{name}-in-{p}"] = {**base, **overrides}
    return {"clouds": clouds}


def install_plugin() -> None:
    """This checkout's `openstack intercloud` plugin into the CLI's venv (its entry points;
    no dependencies: the CLI has osc-lib, cliff and keystoneauth1)."""
    pip = venvs.venv("openstackclient") / "bin" / "pip"
    proc = subprocess.run(
        [str(pip), "install", "-q", "--no-deps", "--force-reinstall", str(REPO)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise LabError(f"installing the openstack plugin failed: {proc.stderr.strip()[-500:]}")


def write_clouds_yaml(path: Path, clouds: dict[str, Any]) -> Path:
    """JSON is YAML: no YAML library needed. Mode 0600 (it holds a password)."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(clouds, indent=2))
    return path


def openstack(
    lab: OpenStackLab,
    home: str,
    clouds_file: Path,
    *args: str,
    timeout: float = 120,
    capture: bool = True,
) -> subprocess.CompletedProcess[str]:
    """`openstack ARGS` (e.g. `--os-cloud A-in-B port list`) in `home`'s gateway namespace
    with `clouds_file`; its output captured, or on ours."""
    osc = venvs.venv("openstackclient") / "bin" / "openstack"
    argv = ["env", f"OS_CLIENT_CONFIG_FILE={clouds_file}", str(osc), *args]
    return subprocess.run(
        nsexec.exec_argv(lab.cloud(home).ns, argv),
        capture_output=capture,
        text=True,
        timeout=timeout,
        check=False,
    )
