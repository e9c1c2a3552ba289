"""A PostgreSQL server inside a lab namespace: the database a cloud's gateways share (lab up
--ha). Debian's server binaries, run as the `postgres` user, listening on one address of the
namespace and on a Unix socket in its data directory's parent (how the lab itself connects).
Its clients are the cloud's gateways on the site's segment (`host all all <subnet> trust`:
a lab, on a segment only its namespaces reach)."""

from __future__ import annotations

import glob
import shutil
import subprocess
import time
from pathlib import Path

from intercloud.lab import nsexec, processes
from intercloud.lab.nsexec import LabError

DATABASE = "intercloud"
AS_POSTGRES = ["runuser", "-u", "postgres", "--"]


def server_binary(name: str) -> str:
    """`initdb` or `postgres` of the newest installed server."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise LabError(f"PostgreSQL's {name} not found (install Debian's postgresql: make install)")
    return found[-1]


def url(address: str) -> str:
    """The SQLAlchemy URL the gateways use."""
    return f"postgresql+psycopg://postgres@{address}:5432/{DATABASE}"


def start(ns: str, workdir: Path, address: str, subnet: str, timeout: float = 30.0) -> int:
    """initdb (first time only) and start the server in `ns` on `address`; its pid once it
    takes sessions and the database exists."""
    data = workdir / "data"
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.chown(workdir, "postgres", "postgres")
    if not data.exists():
        nsexec.run(
            [
                *AS_POSTGRES,
                server_binary("initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ]  # fmt: skip
        )
        with open(data / "pg_hba.conf", "a") as f:
            f.write(f"host all all {subnet} trust\n")
    argv = [server_binary("postgres"), "-D", str(data), "-h", address, "-k", str(workdir)]
    argv += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
    pid = processes.start_daemon(
        nsexec.exec_argv(ns, [*AS_POSTGRES, *argv]), log=workdir / "postgres.log"
    )
    deadline = time.monotonic() + timeout
    while not _answers(workdir):
        if not processes.pid_alive(pid) or time.monotonic() > deadline:
            processes.kill_pids([pid])
            tail = (workdir / "postgres.log").read_text(errors="replace").strip()[-300:]
            raise LabError(f"PostgreSQL in {ns} did not start: {tail}")
        time.sleep(0.2)
    _create_database(workdir)
    return pid


def _psql(workdir: Path, sql: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AS_POSTGRES, "psql", "-h", str(workdir), "-d", "postgres", "-tAc", sql],
        capture_output=True,
        text=True,
        timeout=10,
    )


def _answers(workdir: Path) -> bool:
    return _psql(workdir, "SELECT 1").stdout.strip() == "1"


def _create_database(workdir: Path) -> None:
    found = _psql(workdir, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'")
    if found.stdout.strip() != "1":
        made = _psql(workdir, f"CREATE DATABASE {DATABASE}")
        if made.returncode != 0:
            raise LabError(f"PostgreSQL: cannot create {DATABASE}: {made.stderr.strip()}")
