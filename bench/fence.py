"""What fencing a gateway's writes by its lease token costs (store/fence.py, docs/ha.md):
`PYTHONPATH=$PWD/src python3 -m bench.fence [--writes 1000] [--writers 15]` (root: it starts a
throwaway PostgreSQL as the postgres user, on loopback, with its default durability settings).

1. The same small write transaction (one row added) in a Store without a fence and in one
   with a fence whose token matches the lease, alternated write by write: the median per
   write of each, the difference (the fence's one `SELECT ... FOR KEY SHARE`) and the ratio.
2. The active's renewal (the real claim) while `--writers` threads write without pause
   (the pool's 15 connections by default), without and with the fence, and with the fence
   locking FOR SHARE instead (which every UPDATE of the row waits for): median, p95, max.
Figures, not tests."""

from __future__ import annotations

import argparse
import glob
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
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


def measure(url: str, writes: int, token: int) -> dict[str, float]:
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
    base, fence = statistics.median(without), statistics.median(with_fence)
    return {"without_ms": base * 1000, "fenced_ms": fence * 1000, "ratio": fence / base}


def _renewals(url: str, kind: int, writers: int, leases: PostgresLeases, token: int) -> list:
    """Claim times of 100 renewals (every 50 ms) while `writers` threads write, in seconds;
    kind 0: no fence, 1: the fence, 2: the fence locking FOR SHARE (what it did first)."""
    store = Store(url)
    if kind:
        store.fence = fence = Fence("A", "gw1", lambda: token)
        if kind == 2:
            fence._locked = fence._row.with_for_update(read=True)
    stop = threading.Event()

    def write(first: int) -> None:
        vni = first
        while not stop.is_set():
            _writes(store, vni, 1)
            vni += 1

    threads = [
        threading.Thread(target=write, args=((k + 1) * 10_000_000 + kind * 3_000_000,))
        for k in range(writers)
    ]
    for thread in threads:
        thread.start()
    took = []
    try:
        time.sleep(1.0)  # every writer under way
        for _ in range(100):
            started = time.perf_counter()
            assert leases.claim("gw1", token, leases.timing) == token
            took.append(time.perf_counter() - started)
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        store.dispose()
    return sorted(took)


def renewals(url: str, writers: int, leases: PostgresLeases, token: int) -> dict[str, list]:
    kinds = ("without fence", "with fence", "FOR SHARE fence")
    return {name: _renewals(url, kind, writers, leases, token) for kind, name in enumerate(kinds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=1000, help="writes of each kind")
    parser.add_argument("--writers", type=int, default=15, help="concurrent writers")
    args = parser.parse_args()
    with postgres() as url:
        Store(url).migrate()
        timing = Timing(ttl_s=60.0, renew_s=1.0, step_down_s=30.0)  # held for the whole run
        leases = PostgresLeases(url, "A", "gw1", timing)
        try:
            token = leases.claim("gw1", None, timing)
            assert token is not None
            fig = measure(url, args.writes, token)
            held = renewals(url, args.writers, leases, token)
        finally:
            leases.close()
    print(f"write transaction without fence: median {fig['without_ms']:.2f} ms")
    print(
        f"write transaction with fence:    median {fig['fenced_ms']:.2f} ms "
        f"(+{fig['fenced_ms'] - fig['without_ms']:.2f} ms, ratio {fig['ratio']:.2f})"
    )

    for kind, took in held.items():
        p95 = took[int(len(took) * 0.95) - 1]
        print(
            f"renewal under {args.writers} writers, {kind + ':':<16} median "
            f"{statistics.median(took) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
            f"max {took[-1] * 1000:.1f} ms"
        )


if __name__ == "__main__":
    main()
