"""Runs in A's gateway: sends many API requests at once (`concurrency` at a time), then polls
the projects' expansions until all are active (`until` "active") or gone (`until` "none").

Its config comes as JSON on stdin: {"base", "cafile", "concurrency", "timeout", "requests":
[{"method", "path", "body", "token"}], "tokens": [...], "until"}; it prints {"sent_s",
"done_s", "done", "counts", "ids"}.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time
from typing import Any

import httpx


def _auth(tok: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + tok}


async def _counts(c: httpx.AsyncClient, tokens: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for tok in tokens:
        for e in (await c.get("/v1/expansions", headers=_auth(tok))).json():
            counts[e["status"]] = counts.get(e["status"], 0) + 1
    return counts


async def _run(cfg: dict[str, Any]) -> dict[str, Any]:
    tls = ssl.create_default_context(cafile=cfg["cafile"])
    sem = asyncio.Semaphore(cfg["concurrency"])
    async with httpx.AsyncClient(base_url=cfg["base"], timeout=300, verify=tls) as c:
        t0 = time.perf_counter()

        async def one(q: dict[str, Any]) -> Any:
            async with sem:
                r = await c.request(
                    q["method"], q["path"], json=q.get("body"), headers=_auth(q["token"])
                )
                if r.status_code >= 300:
                    raise SystemExit(f"{q['method']} {q['path']}: {r.status_code} {r.text[:300]}")
                return r.json() if r.content else None

        results = await asyncio.gather(*(one(q) for q in cfg["requests"]))
        sent = time.perf_counter() - t0
        while True:
            counts = await _counts(c, cfg["tokens"])
            total = sum(counts.values())
            done = total == 0 if cfg["until"] == "none" else counts.get("active", 0) == total
            if done or time.perf_counter() - t0 > cfg["timeout"]:
                break
            await asyncio.sleep(0.25)
    ids = [r["id"] for r in results if r]
    out = {"sent_s": sent, "done_s": time.perf_counter() - t0, "done": done, "counts": counts}
    return {**out, "ids": ids}


def main() -> None:
    print(json.dumps(asyncio.run(_run(json.loads(sys.stdin.read())))))


if __name__ == "__main__":
    main()
