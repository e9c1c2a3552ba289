"""Real Keystone and Neutron for tests and the lab: each in its own virtualenv (their pins are not
ours), installed from the frozen requirement files in scripts/openstack/, cached under
/var/cache/intercloud/openstack/ by a hash of those files; plus the empty databases both start
from (made once, copied per start: Neutron's migrations do not run on SQLite).

    python -m intercloud.lab.openstack.venvs     # install (instant when cached)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

from intercloud.lab.nsexec import program_path

CACHE = Path("/var/cache/intercloud/openstack")
REQUIREMENTS = Path(__file__).resolve().parents[4] / "scripts" / "openstack"
# the services, and the unmodified `openstack` CLI a tenant uses through the proxy
SERVICES = ("keystone", "neutron", "openstackclient")
NEUTRON_SCHEMA = "intercloud.lab.programs.neutron_schema"  # run by the Neutron venv's python


class InstallError(RuntimeError):
    pass


def _requirements(service: str) -> Path:
    path = REQUIREMENTS / f"{service}.txt"
    if not path.exists():
        raise InstallError(f"missing {path} (the frozen requirements of {service})")
    return path


def venv(service: str) -> Path:
    """The virtualenv of `service` for the current requirement file."""
    digest = hashlib.sha256(_requirements(service).read_bytes()).hexdigest()[:12]
    return CACHE / f"{service}-{digest}"


def python(service: str) -> Path:
    return venv(service) / "bin" / "python"


def _run(argv: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise InstallError(f"{what} failed: {' | '.join(tail)}")
    return proc


def install(service: str) -> Path:
    """Make the virtualenv of `service` if the cache has none for these requirements (a
    half-made one, without its `.complete` mark, is made again)."""
    target = venv(service)
    if (target / ".complete").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "venv", str(target)], f"making the {service} virtualenv")
    _run(
        [str(target / "bin" / "pip"), "install", "-q", "-r", str(_requirements(service))],
        f"pip install of {service}",
    )
    (target / ".complete").touch()
    return target


def neutron_schema() -> Path:
    """An empty Neutron database file with the full schema (made once per venv)."""
    path = venv("neutron") / "schema.sqlite"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        _run(
            [
                str(python("neutron")),
                "-I",
                str(program_path("intercloud.lab.programs.neutron_schema")),
            ],
            "building the Neutron schema",
            input=str(tmp),
        )
        tmp.rename(path)
    return path


def keystone_schema() -> Path:
    """An empty, migrated Keystone database file (made once per venv)."""
    path = venv("keystone") / "schema.sqlite"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        conf = path.with_name("schema.conf")
        conf.write_text(f"[database]\nconnection = sqlite:///{tmp}\n")
        _run(
            [
                str(venv("keystone") / "bin" / "keystone-manage"),
                "--config-file",
                str(conf),
                "db_sync",
            ],
            "keystone-manage db_sync",
        )
        tmp.rename(path)
    return path


@contextlib.contextmanager
def _locked():
    """One installer at a time (a test session and a lab may start together)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_all() -> dict[str, float]:
    """Install both services and their databases; seconds each step took."""
    took = {}
    with _locked():
        for service in SERVICES:
            started = time.monotonic()
            install(service)
            took[service] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        neutron_schema()
        keystone_schema()
        took["schemas"] = round(time.monotonic() - started, 1)
    return took


if __name__ == "__main__":
    try:
        print("openstack services ready:", ensure_all())
    except InstallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
