"""HTTP requests made from inside a network namespace (the lab's agents and the OpenStack
services listen there; the caller lives in the host's namespace). Standard library only, so it
starts fast.

Requests come on stdin, one JSON line each (secrets included: never in argv), each answered by
one JSON line on stdout: {"status", "headers" (lower-case names), "text", "error"}; status 0
means no answer (error says why). It ends at end of input, so one process serves one request
or, kept open (lab/nshttp.py: Relay), many.

A request: {"method", "host", "port", "path", "headers", "body" (JSON or null), "timeout",
"wait" (seconds to retry connection errors), "cafile" (HTTPS trusting that CA, or null)}.
"""

from __future__ import annotations

import http.client
import json
import ssl
import sys
import time
from typing import Any


def _connect(req: dict[str, Any]) -> http.client.HTTPConnection:
    if req.get("cafile"):
        tls = ssl.create_default_context(cafile=req["cafile"])
        return http.client.HTTPSConnection(
            req["host"], req["port"], timeout=req["timeout"], context=tls
        )
    return http.client.HTTPConnection(req["host"], req["port"], timeout=req["timeout"])


def _once(req: dict[str, Any]) -> dict[str, Any]:
    conn = _connect(req)
    try:
        headers = {"Accept": "application/json", **req.get("headers", {})}
        body = None
        if req.get("body") is not None:
            body = json.dumps(req["body"]).encode()
            headers.setdefault("Content-Type", "application/json")
        conn.request(req["method"], req["path"], body=body, headers=headers)
        resp = conn.getresponse()
        return {
            "status": resp.status,
            "headers": {k.lower(): v for k, v in resp.getheaders()},
            "text": resp.read().decode("utf-8", "replace"),
            "error": "",
        }
    finally:
        conn.close()


def answer(req: dict[str, Any]) -> dict[str, Any]:
    """One request, connection errors retried for req["wait"] seconds."""
    deadline = time.monotonic() + req.get("wait", 0.0)
    while True:
        try:
            return _once(req)
        except OSError as exc:
            out = {"status": 0, "headers": {}, "text": "", "error": f"{type(exc).__name__}: {exc}"}
            if time.monotonic() >= deadline:
                return out
            time.sleep(0.1)


def main() -> None:
    for line in sys.stdin:
        sys.stdout.write(json.dumps(answer(json.loads(line))) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
