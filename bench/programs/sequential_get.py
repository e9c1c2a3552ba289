"""Runs in a gateway namespace: `n` GETs of one URL, one after the other over one keep-alive
connection, after `warmup` unrecorded ones; prints {"latencies": [seconds, ...], "status":
[distinct statuses]}. Config as JSON on stdin (the token too: never in argv):
{"url", "headers", "cafile" (or null), "n", "warmup", "interval"}: a call starts `interval`
seconds after the previous one started (the proxy's per-project rate limit allows 10 per
second by default)."""

from __future__ import annotations

import gc
import json
import ssl
import sys
import time

import httpx


def main() -> None:
    cfg = json.loads(sys.stdin.read())
    verify: object = ssl.create_default_context(cafile=cfg["cafile"]) if cfg["cafile"] else True
    gc.disable()  # a full collection here would be counted as the server's latency
    latencies, statuses = [], set()
    started = 0.0
    with httpx.Client(timeout=30.0, verify=verify) as c:  # type: ignore[arg-type]
        for i in range(cfg["warmup"] + cfg["n"]):
            if i:
                time.sleep(max(0.0, started + cfg["interval"] - time.perf_counter()))
            started = t = time.perf_counter()
            r = c.get(cfg["url"], headers=cfg["headers"])
            seconds = time.perf_counter() - t
            statuses.add(r.status_code)
            if i >= cfg["warmup"]:
                latencies.append(seconds)
    print(json.dumps({"latencies": latencies, "status": sorted(statuses)}))


if __name__ == "__main__":
    main()
