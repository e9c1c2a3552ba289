"""Thin helpers over `ip` for the lab: namespaces, veths, addresses, commands and HTTP calls
run inside a namespace.

Everything here acts inside named network namespaces only. Veths are created directly in
their namespaces (`ip -n NS link add X type veth peer name Y netns NS2`), so nothing ever
appears in the host's root namespace, even for an instant.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from intercloud.errors import IntercloudError


class LabError(IntercloudError):
    """The lab could not build, change or tear down its namespaces."""

    code = "lab_error"


def run(
    argv: Sequence[str], *, check: bool = True, timeout: float = 30.0, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output; raise LabError with its stderr if it fails."""
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, input=input, check=False
        )
    except FileNotFoundError as exc:
        raise LabError(f"command not found: {argv[0]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"timed out after {timeout:.0f}s: {' '.join(argv)}") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise LabError(f"{' '.join(argv)}: {detail[-1] if detail else f'exit {proc.returncode}'}")
    return proc


def ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip"] + (["-n", ns] if ns else []) + list(args)
    return run(argv, check=check)


# --- namespaces --------------------------------------------------------------------------------


def list_namespaces(prefix: str = "") -> list[str]:
    out = run(["ip", "netns", "list"]).stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return sorted(n for n in names if n.startswith(prefix))


def exists(ns: str) -> bool:
    return Path("/run/netns", ns).exists()


def add_namespace(ns: str) -> None:
    ip("netns", "add", ns)
    ip("link", "set", "lo", "up", ns=ns)


def namespace_pids(ns: str) -> list[int]:
    proc = run(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def delete_namespace(ns: str) -> None:
    """Kill every process in the namespace, then delete it (its interfaces go with it)."""
    kill_pids(namespace_pids(ns))
    ip("netns", "del", ns, check=False)
    if exists(ns):
        raise LabError(f"could not delete namespace {ns}")


def sysctl(ns: str, key: str, value: str) -> None:
    run(["ip", "netns", "exec", ns, "sysctl", "-qw", f"{key}={value}"])


# --- links -------------------------------------------------------------------------------------


def add_veth(ns1: str, name1: str, ns2: str, name2: str) -> None:
    """A veth pair with one end in each namespace, both ends down."""
    ip("link", "add", name1, "type", "veth", "peer", "name", name2, "netns", ns2, ns=ns1)


def add_bridge(ns: str, name: str) -> None:
    ip("link", "add", name, "type", "bridge", ns=ns)
    ip("link", "set", name, "up", ns=ns)


def set_up(
    ns: str,
    ifname: str,
    *,
    master: str | None = None,
    mtu: int | None = None,
    mac: str | None = None,
) -> None:
    if mac:
        ip("link", "set", ifname, "address", mac, ns=ns)
    if mtu:
        ip("link", "set", ifname, "mtu", str(mtu), ns=ns)
    if master:
        ip("link", "set", ifname, "master", master, ns=ns)
    ip("link", "set", ifname, "up", ns=ns)


def add_address(ns: str, ifname: str, cidr: str) -> None:
    ip("addr", "add", cidr, "dev", ifname, ns=ns)


def add_default_route(ns: str, via: str) -> None:
    ip("route", "add", "default", "via", via, ns=ns)


def link_exists(ns: str, ifname: str) -> bool:
    return ip("link", "show", "dev", ifname, ns=ns, check=False).returncode == 0


# --- processes ---------------------------------------------------------------------------------


def pid_alive(pid: int | None) -> bool:
    """True if pid runs (a zombie child is reaped and counts as dead)."""
    if not pid:
        return False
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def pid_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def kill_pids(pids: Sequence[int], timeout: float = 5.0) -> None:
    """SIGTERM, wait up to timeout, then SIGKILL whatever is left."""
    pids = [p for p in pids if p != os.getpid()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 2.0)
        while time.monotonic() < deadline:
            pids = [p for p in pids if pid_alive(p)]
            if not pids:
                return
            time.sleep(0.05)


def exec_argv(ns: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


# --- HTTP inside a namespace --------------------------------------------------------------------

# Runs inside the namespace; stdlib only so that it starts fast. The request (with its token)
# arrives on stdin, not in argv, so tokens never show in `ps`.
_HTTP_SCRIPT = r"""
import http.client, json, ssl, sys, time
req = json.loads(sys.stdin.read())
deadline = time.monotonic() + req["wait"]
tls = ssl.create_default_context(cafile=req["cafile"]) if req["cafile"] else None
while True:
    try:
        if tls:
            c = http.client.HTTPSConnection(
                req["host"], req["port"], timeout=req["timeout"], context=tls
            )
        else:
            c = http.client.HTTPConnection(req["host"], req["port"], timeout=req["timeout"])
        headers = {"Accept": "application/json"}
        body = None
        if req["body"] is not None:
            body = json.dumps(req["body"]).encode()
            headers["Content-Type"] = "application/json"
        if req["token"]:
            headers["Authorization"] = "Bearer " + req["token"]
        c.request(req["method"], req["path"], body=body, headers=headers)
        r = c.getresponse()
        out = {"status": r.status, "text": r.read().decode("utf-8", "replace")}
        break
    except OSError as e:
        out = {"status": 0, "text": "", "error": type(e).__name__ + ": " + str(e)}
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
print(json.dumps(out))
"""


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
        "token": token,
        "host": host,
        "port": port,
        "timeout": timeout,
        "wait": wait,
        "cafile": cafile,
    }
    proc = run(
        exec_argv(ns, [sys.executable, "-I", "-c", _HTTP_SCRIPT]),
        check=False,
        input=json.dumps(req),
        timeout=timeout + wait + 15,
    )
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError) as exc:
        err = (proc.stderr or proc.stdout).strip()
        raise LabError(f"HTTP helper failed in {ns}: {err or f'exit {proc.returncode}'}") from exc
    text = out.get("text", "")
    try:
        data: Any = json.loads(text) if text else None
    except ValueError:
        data = text
    return out["status"], data, out.get("error", "")
