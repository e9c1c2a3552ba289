"""A hostile peer agent: answers every federation call like an honest agent, except the ones it
is told to answer with hostile values, and signs every answer correctly (so what stops them is
the agent's validation, not the signature).

In process (tests/functional): `HostilePeer` plugs into the harness's Router like an app.
As a process (tests/integration): `python3 hostile_peer.py --listen IP:PORT --name B
--keys keys.json --scenario scenario.json [--cert C --key K]` serves HTTP(S); it reads the
scenario file ({"id": ..., "call": ..., "answer": ..., "forget": bool}) on every request
(`forget`: drop the VNIs agreed so far), and appends each answer it gave to `<scenario>.log`
as {"id", "call", "hostile"}.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from intercloud.federation import signing

PWNED = "/tmp/intercloud-hostile-peer-pwned"  # what the injected command would make
PWN = f"198.18.0.9\nnetns add pwn\nnetns exec pwn touch {PWNED}"
HUGE = "x" * 200_000

# (call, answer) in turn: every string field of every answer gets newlines and shell/`ip`
# syntax, addresses get CIDRs and zone ids, numbers get wrong types and out-of-range values,
# names get clouds that are not members.
HOSTILE: list[tuple[str, Any]] = [
    ("health", {"name": "B", "tunnel_endpoint": PWN}),
    ("health", {"name": "B", "tunnel_endpoint": "0.0.0.0/0"}),
    ("health", {"name": "B", "tunnel_endpoint": "198.18.2.0/24"}),
    ("health", {"name": "B", "tunnel_endpoint": "fe80::1%x\nnetns exec pwn id"}),
    ("health", {"name": "B", "tunnel_endpoint": "fd00::1"}),  # another family than the link
    ("health", {"name": "B", "tunnel_endpoint": "127.0.0.1"}),  # our traffic to ourselves
    ("health", {"name": "B", "tunnel_endpoint": "169.254.0.1"}),
    ("health", {"name": "B", "tunnel_endpoint": {"x": 1}}),
    ("health", {"name": "B", "tunnel_endpoint": ["198.18.2.2"]}),
    ("health", {"name": "B", "tunnel_endpoint": 3323068930}),
    ("health", {"name": "B", "tunnel_endpoint": HUGE}),
    ("health", {"name": "B\nlink: forged", "tunnel_endpoint": "198.18.2.2"}),
    ("health", ["B", "198.18.2.2"]),
    ("health", "198.18.2.2; reboot"),
    ("health", {"name": "B", "time": "now\nlink: forged"}),  # the peer's clock (diagnose)
    ("health", {"name": "B", "time": 1e308}),
    ("replica", {"status": "active\nforged", "vni": 100, "reason": ""}),
    ("replica", {"status": "active", "vni": "100; id", "reason": ""}),
    ("replica", {"status": "active", "vni": 2**40, "reason": ""}),
    ("replica", {"status": "active", "vni": True, "reason": ""}),
    ("replica", {"status": "error", "vni": None, "reason": "x\n" * 5000 + "$(id)"}),
    ("replica", {"status": "error", "vni": None, "reason": {"why": "a dict"}}),
    ("replica", [1, 2, 3]),
    ("vni", {"vni": "4096"}),
    ("vni", {"vni": 1.5}),
    ("vni", {"vni": 0}),
    ("vni", {"vni": -7}),
    ("vni", {"vni": 2**24}),
    ("vni", {"vni": 2**63}),
    ("vni", {"vni": None}),
    ("vni", {"vni": "1\nnetns add pwn"}),
    ("vni", {}),
    ("vni", "4096"),
    ("relays", {"relays": [["A", "Z"]], "applied": []}),
    ("relays", {"relays": [["C", "C"]], "applied": None}),
    ("relays", {"relays": [[1, 2]], "applied": None}),
    ("relays", {"relays": "C>A", "applied": None}),
    ("relays", {"relays": [], "applied": [["C\nx", "A"]]}),
    ("relays", {"relays": [["A", "C"]] * 10_000, "applied": None}),
    ("adjacency", {"vni": "7"}),
    ("adjacency", {"vni": 2**24 + 1}),
    ("adjacency", {"vni": [7]}),
    ("direct", {"direct": ["Z"]}),
    ("direct", {"direct": "C"}),
    ("direct", {"direct": ["C\n; id"]}),
    ("ports", {"ports": [["fa:16:3e:00:00:01", "10.10.0.5/24"]]}),
    ("ports", {"ports": [["fa:16:3e:00:00:01\n", "10.10.0.5"]]}),
    ("ports", {"ports": [["fa:16:3e:00:00:01", "fe80::1%eth0"]]}),
    ("ports", {"ports": "all"}),
    ("flush", ["flush"]),
    ("flush", "ok\nforged"),
    ("delete", [{"status": 200}]),
]

_ROUTES = [
    ("GET", r"/v1/federation/health", "health"),
    ("PUT", r"/v1/federation/replicas/[^/]+", "replica"),
    ("GET", r"/v1/federation/replicas/[^/]+", "replica"),
    ("DELETE", r"/v1/federation/replicas/[^/]+", "delete"),
    ("PUT", r"/v1/federation/replicas/[^/]+/vni", "vni"),
    ("PUT", r"/v1/federation/replicas/[^/]+/relays", "relays"),
    ("POST", r"/v1/federation/replicas/[^/]+/flush", "flush"),
    ("PUT", r"/v1/federation/adjacencies/[^/]+", "adjacency"),
    ("PUT", r"/v1/federation/expansions/[^/]+/direct", "direct"),
    ("PUT", r"/v1/federation/expansions/[^/]+/ports", "ports"),
]


def call_of(method: str, path: str) -> str | None:
    for m, pattern, call in _ROUTES:
        if m == method and re.fullmatch(pattern, path):
            return call
    return None


@dataclass
class HostilePeer:
    """The peer `name`: honest answers from its own small state, but for `hostile[call]`."""

    name: str
    endpoint: str  # what it says its tunnel endpoint is when honest
    keys: dict[str, str]  # requester -> shared key
    hostile: dict[str, Any] = field(default_factory=dict)
    vnis: dict[str, int] = field(default_factory=dict)  # replica uid -> agreed VNI
    served: list[tuple[str, str, bool]] = field(default_factory=list)  # (requester, call, hostile)

    def answer(self, method: str, path: str, body: bytes, headers: dict) -> tuple[int, bytes, dict]:
        h = {k.lower(): v for k, v in headers.items()}
        requester = h.get(signing.HEADER_PEER.lower(), "")
        nonce = h.get(signing.HEADER_NONCE.lower(), "")
        path = path.partition("?")[0]
        call = call_of(method, path)
        if requester not in self.keys or call is None:
            return 404, b'{"error": {"code": "not_found", "message": "no"}}', {}
        request = json.loads(body) if body else {}
        if call in self.hostile:
            status, data = 200, self.hostile[call]
        else:
            status, data = self._honest(call, path, request)
        self.served.append((requester, call, call in self.hostile))
        content = b"" if status == 204 else json.dumps(data).encode()
        if isinstance(data, dict) and "__status__" in data:  # a refusal, its body as given
            status, content = data["__status__"], data["__body__"].encode()
        sig = signing.answer_signature(
            self.keys[requester], self.name, requester, nonce, status, content
        )
        out = {signing.HEADER_ANSWER_SIGNATURE: sig}
        if status != 204:
            out["Content-Type"] = "application/json"
        return status, content, out

    def _honest(self, call: str, path: str, request: dict) -> tuple[int, Any]:
        uid = path.split("/")[4] if call != "health" else ""
        if call == "health":
            now = datetime.now(UTC).isoformat()
            return 200, {"name": self.name, "time": now, "tunnel_endpoint": self.endpoint}
        if call == "replica":
            vni = self.vnis.get(uid)
            return 200, {"status": "active" if vni else "pending", "vni": vni, "reason": ""}
        if call == "delete":
            self.vnis.pop(uid, None)
            return 204, None
        if call in ("vni", "adjacency"):
            taken = set(request.get("exclude", [])) | set(self.vnis.values())
            low = request.get("vni_min") or 1
            vni = request.get("vni") or next(n for n in range(low, 2**24) if n not in taken)
            self.vnis[uid] = vni
            return 200, {"vni": vni}
        if call == "relays":
            return 200, {"relays": request.get("relays", []), "applied": request.get("relays")}
        if call == "direct":
            return 200, {"direct": sorted(set(request.get("direct", [])))}
        if call == "ports":
            return 200, {"ports": request.get("ports", [])}
        return 202, {}  # flush

    # -- as an app of the harness's Router (tests/functional/federation_harness.py) ------------
    def request(self, method: str, url: str, content: bytes = b"", headers: Any = None):
        status, body, extra = self.answer(method, url, content or b"", dict(headers or {}))
        return httpx.Response(status, headers=extra, content=body)


def serve(argv: list[str]) -> None:  # pragma: no cover - runs in a lab namespace
    import ssl
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--keys", required=True)
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args(argv)
    scenario = Path(args.scenario)
    served = scenario.with_suffix(".log")
    peer = HostilePeer(args.name, args.endpoint, json.loads(Path(args.keys).read_text()))

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(size) if size else b""
            try:
                now = json.loads(scenario.read_text()) if scenario.exists() else {}
            except ValueError:
                now = {}
            peer.hostile = {now["call"]: now["answer"]} if now.get("call") else {}
            if now.get("forget"):
                peer.vnis.clear()
            status, content, extra = peer.answer(self.command, self.path, body, dict(self.headers))
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
            if peer.served:
                _, call, hostile = peer.served[-1]
                with served.open("a") as f:
                    f.write(json.dumps({"id": now.get("id"), "call": call, "hostile": hostile}))
                    f.write("\n")

        do_GET = do_PUT = do_POST = do_DELETE = _any

        def log_message(self, *args: Any) -> None:
            pass

    host, _, port = args.listen.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), Handler)
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print("hostile peer listening", flush=True)
    server.serve_forever()


if __name__ == "__main__":  # pragma: no cover
    serve(sys.argv[1:])
