"""For every tier: a real PostgreSQL server for the store tests, started once per session in a
temporary directory on loopback and stopped after."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.waiting import wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else None


def _answers(proc: subprocess.Popen, port: int) -> bool:
    """True once the server takes a session (it accepts TCP a moment before it does)."""
    import psycopg

    if proc.poll() is not None:
        raise AssertionError(f"PostgreSQL exited with {proc.returncode} while starting")
    try:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Base URL (without database) of a throwaway PostgreSQL server."""
    initdb, postgres = _pg_bin("initdb"), _pg_bin("postgres")
    if initdb is None or postgres is None:
        pytest.fail(
            "PostgreSQL server binaries not found: install Debian's 'postgresql' "
            "(make install does)"
        )
    if os.geteuid() != 0:
        pytest.skip("starting PostgreSQL here needs root (to run it as the postgres user)")
    workdir = tempfile.mkdtemp(prefix="intercloud-pg-")
    datadir = os.path.join(workdir, "data")
    shutil.chown(workdir, "postgres", "postgres")
    run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        run_as + [initdb, "-D", datadir, "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    proc = subprocess.Popen(
        run_as
        + [
            postgres,
            "-D",
            datadir,
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-k",
            workdir,
            "-c",
            "fsync=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _answers(proc, port), 30, 0.2, "PostgreSQL to accept connections")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def postgres_databases(postgres_server: str) -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty databases on the session's server, dropped after the test."""
    import psycopg

    dsn = postgres_server.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    made: list[str] = []

    def make() -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        made.append(name)
        return f"{postgres_server}/{name}"

    yield make
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in made:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def postgres_url(postgres_databases: Callable[[], str]) -> str:
    return postgres_databases()


@pytest.fixture(params=["sqlite", "postgres"])
def databases(request: pytest.FixtureRequest, tmp_path) -> Callable[[], str]:
    """A factory of fresh databases of each supported kind (the test runs once per kind)."""
    if request.param == "postgres":
        return request.getfixturevalue("postgres_databases")
    counter = iter(range(1000))
    return lambda: f"sqlite:///{tmp_path}/store{next(counter)}.db"


@pytest.fixture
def database_url(databases: Callable[[], str]) -> str:
    return databases()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Every lab daemon a test started is stopped by the time the session ends: one still
    running leaked (out of a namespace that is gone, or one that stays). It is named, killed,
    and the session fails."""
    from intercloud.lab import processes

    leaked = processes.still_running()
    if not leaked:
        return
    for pid, argv in leaked.items():
        print(f"\nleaked lab daemon {pid}: {' '.join(argv)[:300]}")
    processes.kill_pids(list(leaked))
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
