"""Two (or more) agents in one process: real API, real store (SQLite), fake data plane, and
federation calls routed between their apps in memory."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
from fastapi.testclient import TestClient

from intercloud import config as config_mod
from intercloud.agent import build
from intercloud.api import create_app
from intercloud.api.context import AppContext
from intercloud.drivers.dataplane.fake import FakeDataplane
from intercloud.federation.peers import Federation


class Router(httpx.BaseTransport):
    """Sends each request to the in-process app registered for its host."""

    def __init__(self) -> None:
        self.apps: dict[str, TestClient] = {}
        self.names: dict[str, str] = {}  # host -> agent name
        self.down: set[str] = set()
        self.cut: set[frozenset[str]] = set()  # pairs of agent names that cannot reach each other

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = urlparse(str(request.url)).hostname or ""
        caller = request.headers.get("X-Intercloud-Peer", "")
        if (
            host in self.down
            or host not in self.apps
            or frozenset((caller, self.names.get(host, ""))) in self.cut
        ):
            raise httpx.ConnectError("connection refused", request=request)
        client = self.apps[host]
        resp = client.request(
            request.method,
            request.url.raw_path.decode(),  # the query string too: it is signed
            content=request.content,
            headers=dict(request.headers),
        )
        return httpx.Response(resp.status_code, headers=resp.headers, content=resp.content)


@dataclass
class Agent:
    name: str
    ip: str
    ctx: AppContext
    http: TestClient
    admin_token: str
    tokens: dict[str, str]

    @property
    def dataplane(self) -> FakeDataplane:
        return self.ctx.dataplane  # type: ignore[return-value]

    def admin(self, method: str, path: str, body: dict | None = None) -> httpx.Response:
        return self.http.request(
            method, path, json=body, headers={"Authorization": f"Bearer {self.admin_token}"}
        )

    def user(
        self, project: str, method: str, path: str, body: dict | None = None
    ) -> httpx.Response:
        return self.http.request(
            method, path, json=body, headers={"Authorization": f"Bearer {self.tokens[project]}"}
        )

    def reconcile(self, passes: int = 1) -> int:
        return sum(self.ctx.reconciler.reconcile_once().changes for _ in range(passes))


def make_agent(
    tmp: Path, router: Router, name: str, index: int, database: str | None = None
) -> Agent:
    ip = f"198.18.{index}.2"
    admin_token = secrets.token_hex(16)
    tokens = {"p1": secrets.token_hex(16), "p2": secrets.token_hex(16)}
    data = {
        "agent": {
            "name": name,
            "database": database or f"sqlite:///{tmp}/{name}.db",
            "admin_token": admin_token,
            "plain_http": True,  # in-process calls over an httpx transport
        },
        "dataplane": {"driver": "fake"},
        "ipsec": {"driver": "fake"},
        "projects": [{"name": p, "token": t} for p, t in tokens.items()],
        "networks": [
            {"name": "net1", "project": "p1", "cidr": "10.10.0.0/24", "interface": "tn-net1"},
            {"name": "net2", "project": "p2", "cidr": "10.10.0.0/24", "interface": "tn-net2"},
        ],
    }
    cfg = config_mod.parse(data, env={})
    ctx = build(cfg)
    ctx.reconciler.federation = Federation(
        name, transport=router, plain_http=True, metrics=ctx.metrics
    )
    ctx.federation = ctx.reconciler.federation  # the tenant API proxy's calls go the same way
    fake: FakeDataplane = ctx.dataplane  # type: ignore[assignment]
    fake.add_foreign("tn-net1", "bridge")
    fake.add_foreign("tn-net2", "bridge")
    http = TestClient(create_app(ctx), raise_server_exceptions=False)
    router.apps[ip] = http
    router.names[ip] = name
    return Agent(name, ip, ctx, http, admin_token, tokens)


def converge(*agents: Agent, rounds: int = 4) -> None:
    """`rounds` passes of each agent in turn: what a federation needs to settle."""
    for _ in range(rounds):
        for agent in agents:
            agent.reconcile()


def peer(a: Agent, b: Agent, projects: tuple[str, ...] = ("p1", "p2"), limit: int = 10) -> None:
    key = secrets.token_hex(16)
    psk = secrets.token_hex(16)
    for x, y in ((a, b), (b, a)):
        for path, body in (
            (
                "/v1/peers",
                {
                    "name": y.name,
                    "federation_url": f"http://{y.ip}:8700",
                    "underlay_endpoint": y.ip,
                    "key": key,
                },
            ),
            ("/v1/links", {"peer": y.name, "local_endpoint": x.ip, "psk": psk}),
            (
                "/v1/agreements",
                {
                    "peer": y.name,
                    "projects": list(projects),
                    "peer_projects": list(projects),
                    "max_expansions_per_project": limit,
                },
            ),
        ):
            r = x.admin("POST", path, body)
            assert r.status_code == 201, r.text


@contextlib.contextmanager
def peered_pair(tmp_path: Path, router: Router) -> Iterator[tuple[Agent, Agent]]:
    """Agents A and B on `router`, peered (both projects); their stores closed afterwards."""
    a = make_agent(tmp_path, router, "A", 1)
    b = make_agent(tmp_path, router, "B", 2)
    peer(a, b)
    try:
        yield a, b
    finally:
        for agent in (a, b):
            agent.ctx.store.dispose()
