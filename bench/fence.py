"""What fencing a gateway's writes by its lease token costs (store/fence.py, docs/ha.md):
`PYTHONPATH=$PWD/src python3 -m bench.fence [--writes 200]` (root: it starts a throwaway
PostgreSQL as the postgres user, on loopback, with its default durability settings).

The same small write transaction (one row added) in a Store without a fence and in one with
a fence whose token matches the lease, alternated write by write; the
median per write of each, the difference (the fence's one `SELECT ... FOR SHARE`) and the
ratio. A figure, not a test."""

from __future__ import annotations

import argparse
import glob
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from intercloud.domain.leadership import Timing
from intercloud.store import Store
from intercloud.store import models as m
from intercloud.store.fence import Fence
from intercloud.store.leases import PostgresLeases


@contextmanager
def postgres() -> Iterator[str]:
    """A PostgreSQL server of its own in a temporary directory; its URL."""
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1]
    server = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))[-1]
    workdir = tempfile.mkdtemp(prefix="bench-fence-")
    shutil.chown(workdir, "postgres", "postgres")
    run_as = ["runuser", "-u", "postgres", "--"]
    data = f"{workdir}/data"
    subprocess.run([*run_as, initdb, "-D", data, "-A", "trust", "-U", "postgres"], check=True,
                   capture_output=True)  # fmt: skip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [*run_as, server, "-D", data, "-h", "127.0.0.1", "-p", str(port), "-k", workdir]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(port)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(workdir, ignore_errors=True)


def _wait(port: int) -> None:
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        try:
            psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres").close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _writes(store: Store, first: int, count: int) -> list[float]:
    took = []
    for vni in range(first, first + count):
        started = time.perf_counter()
        with store.session() as s:
            s.add(m.VniAllocation(vni=vni, owner=f"bench-{vni}"))
        took.append(time.perf_counter() - started)
    return took


def measure(url: str, writes: int) -> dict[str, float]:
    Store(url).migrate()
    timing = Timing(ttl_s=60.0, renew_s=1.0, step_down_s=30.0)  # held for the whole run
    leases = PostgresLeases(url, "A", "gw1", timing)
    token = leases.claim("gw1", None, timing)
    plain, fenced = Store(url), Store(url)
    fenced.fence = Fence("A", "gw1", lambda: token)
    try:
        _writes(plain, 1_000_000, 20)  # warm both pools up
        _writes(fenced, 2_000_000, 20)
        without: list[float] = []
        with_fence: list[float] = []
        for i in range(writes):  # alternated write by write: both see the same machine
            without += _writes(plain, 10_000 + i, 1)
            with_fence += _writes(fenced, 20_000 + i, 1)
    finally:
        plain.dispose()
        fenced.dispose()
        leases.close()
    base, fence = statistics.median(without), statistics.median(with_fence)
    return {"without_ms": base * 1000, "fenced_ms": fence * 1000, "ratio": fence / base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=200, help="writes of each kind")
    args = parser.parse_args()
    with postgres() as url:
        fig = measure(url, args.writes)
    print(f"write transaction without fence: median {fig['without_ms']:.2f} ms")
    print(
        f"write transaction with fence:    median {fig['fenced_ms']:.2f} ms "
        f"(+{fig['fenced_ms'] - fig['without_ms']:.2f} ms, ratio {fig['ratio']:.2f})"
    )


if __name__ == "__main__":
    main()
