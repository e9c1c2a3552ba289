"""Runs in A's gateway: N concurrent clients, each with its own connection, each looping over
its requests: first `warmup` seconds unrecorded (the server's worker threads, connections and
caches start), then `seconds` recorded. The collector is off in this process: its own full
passes (40-110 ms here) would be counted as the server's latency.

Its config comes as JSON on stdin: {"base", "cafile", "clients", "warmup", "seconds", "kinds":
{kind: [[method, path, body, token], ...]}}; it prints {kind: {"seconds", "latencies":
{method: [seconds, ...]}}}.
"""

from __future__ import annotations

import asyncio
import gc
import json
import ssl
import sys
import time
from typing import Any

import httpx


async def _client(
    cfg: dict[str, Any], i: int, kind: str, lat: dict, phase: dict, ready: asyncio.Event
) -> None:
    tls = ssl.create_default_context(cafile=cfg["cafile"])
    async with httpx.AsyncClient(base_url=cfg["base"], timeout=30.0, verify=tls) as c:
        await c.get("/v1/federation/health")  # connect first: persistent clients are measured
        await ready.wait()
        j = 0
        while time.perf_counter() < phase["until"]:
            j += 1
            for method, path, body, token in cfg["kinds"][kind]:
                path = path.replace("{i}", f"{i}x{j}")
                if body is not None:
                    body = json.loads(json.dumps(body).replace("{i}", f"{i}x{j}"))
                h = {"Authorization": "Bearer " + token} if token else {}
                t = time.perf_counter()
                r = await c.request(method, path, json=body, headers=h)
                if phase["record"]:
                    lat.setdefault(method, []).append(time.perf_counter() - t)
                ok = r.status_code < 300 or (token is None and r.status_code == 401)
                if not ok:
                    raise SystemExit(f"{method} {path}: {r.status_code} {r.text[:200]}")


async def _measure(cfg: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for kind in cfg["kinds"]:
        lat: dict[str, list[float]] = {}
        ready = asyncio.Event()
        phase: dict[str, Any] = {"until": float("inf"), "record": False}
        tasks = [
            asyncio.create_task(_client(cfg, i, kind, lat, phase, ready))
            for i in range(cfg["clients"])
        ]
        await asyncio.sleep(1.0)  # all connected
        phase["until"] = time.perf_counter() + cfg["warmup"] + cfg["seconds"]
        ready.set()
        await asyncio.sleep(cfg["warmup"])
        phase["record"] = True
        t = time.perf_counter()
        await asyncio.gather(*tasks)
        out[kind] = {"seconds": time.perf_counter() - t, "latencies": lat}
    return out


def main() -> None:
    gc.disable()
    cfg = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(_measure(cfg))))


if __name__ == "__main__":
    main()
