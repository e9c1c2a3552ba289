"""HTTP from inside a network namespace (programs/http_request.py does the requests): `http()`
for the agents' API (HTTPS with a CA file, a bearer token), `request()` for any URL and headers
(the OpenStack services), `Relay` for many requests through one process (a process start
costs ≈ 110 ms here, a request over a relay a few ms)."""

from __future__ import annotations

import contextlib
import json
import select
import subprocess
from typing import Any
from urllib.parse import urlsplit

from intercloud.lab.nsexec import LabError, run_program, start_program

PROGRAM = "intercloud.lab.programs.http_request"


def _line(req: dict[str, Any]) -> str:
    return json.dumps(req) + "\n"


def _answer(line: str) -> dict[str, Any]:
    """A program's answer line -> {"status", "headers", "body" (parsed JSON, text or None),
    "error"}."""
    out = json.loads(line)
    text = out.get("text", "")
    try:
        data: Any = json.loads(text) if text else None
    except ValueError:
        data = text
    return {
        "status": out["status"],
        "headers": out.get("headers", {}),
        "body": data,
        "error": out.get("error", ""),
    }


def _one(ns: str, req: dict[str, Any]) -> dict[str, Any]:
    proc = run_program(ns, PROGRAM, input=_line(req), timeout=req["timeout"] + req["wait"] + 15)
    try:
        return _answer(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError) as exc:
        err = (proc.stderr or proc.stdout).strip()
        raise LabError(f"HTTP helper failed in {ns}: {err or f'exit {proc.returncode}'}") from exc


def http(
    ns: str,
    method: str,
    path: str,
    *,
    body: Any = None,
    token: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8700,
    timeout: float = 30.0,
    wait: float = 0.0,
    cafile: str | None = None,
) -> tuple[int, Any, str]:
    """One HTTP request made from inside `ns` (HTTPS trusting the CA file `cafile` when
    given). Returns (status, parsed JSON or text, error); status 0 means no answer (error
    says why). With `wait`, connection errors are retried for that many seconds."""
    req = {
        "method": method.upper(),
        "path": path,
        "body": body,
        "headers": {"Authorization": f"Bearer {token}"} if token else {},
        "host": host,
        "port": port,
        "timeout": timeout,
        "wait": wait,
        "cafile": cafile,
    }
    out = _one(ns, req)
    return out["status"], out["body"], out["error"]


def url_request(
    method: str, url: str, headers: dict[str, str] | None, body: Any, timeout: float, wait: float
) -> dict[str, Any]:
    """The program's request for `url` (http://host:port/path?query)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise LabError(f"not an http:// URL: {url}")
    return {
        "method": method.upper(),
        "path": (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
        "host": parts.hostname,
        "port": parts.port or 80,
        "headers": dict(headers or {}),
        "body": body,
        "timeout": timeout,
        "wait": wait,
        "cafile": None,
    }


def request(
    ns: str,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: Any = None,
    timeout: float = 30.0,
    wait: float = 0.0,
) -> dict[str, Any]:
    """One HTTP request made from inside `ns` to `url` (http://host:port/path?query).

    Returns {"status", "headers" (lower-case names), "body" (parsed JSON, text or None),
    "error"}; status 0 means no answer (error says why). With `wait`, connection errors are
    retried for that many seconds."""
    return _one(ns, url_request(method, url, headers, body, timeout, wait))


class Relay:
    """One long-lived request process inside a namespace (close() it before checking that the
    namespace is empty)."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.proc = start_program(
            ns,
            PROGRAM,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=1,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(
        self, method: str, url: str, headers: dict[str, str] | None, body: Any, timeout: float
    ) -> dict[str, Any]:
        line = _line(url_request(method, url, headers, body, timeout, 0.0))
        assert self.proc.stdin and self.proc.stdout
        try:
            self.proc.stdin.write(line)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise LabError(f"HTTP relay in {self.ns} is gone: {self._stderr()}") from exc
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout + 15)
        answer = self.proc.stdout.readline() if ready else ""
        if not answer:
            err = self._stderr()
            self.close()
            raise LabError(f"HTTP relay in {self.ns} did not answer: {err}")
        return _answer(answer)

    def _stderr(self) -> str:
        if self.proc.poll() is None or not self.proc.stderr:
            return "no answer"
        return self.proc.stderr.read().strip()[-300:] or f"exit {self.proc.returncode}"

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if self.proc.stdin:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=3)
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()
