"""ApiClient: methods, paths, bodies, auth, error mapping, transport failures."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from intercloud.api_client import ApiClient, path
from intercloud.errors import (
    Conflict,
    Forbidden,
    IntercloudError,
    Invalid,
    NotFound,
    PeerError,
    Unauthorized,
)


def make(handler, url="http://agent:8700", token="s3cret-admin-token"):
    return ApiClient(url, token, transport=httpx.MockTransport(handler))


def test_methods_paths_bodies_and_auth():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        seen.append((request.method, str(request.url), body, request.headers.get("authorization")))
        if request.method == "DELETE":
            return httpx.Response(204)
        return httpx.Response(200, json={"ok": request.method})

    c = make(handler, url="http://agent:8700/")
    assert c.get("/v1/peers") == {"ok": "GET"}
    assert c.post("/v1/peers", {"name": "B"}) == {"ok": "POST"}
    assert c.patch("/v1/links/B", {"mtu": 9000}) == {"ok": "PATCH"}
    assert c.delete("/v1/peers/B") is None
    assert seen == [
        ("GET", "http://agent:8700/v1/peers", None, "Bearer s3cret-admin-token"),
        ("POST", "http://agent:8700/v1/peers", {"name": "B"}, "Bearer s3cret-admin-token"),
        ("PATCH", "http://agent:8700/v1/links/B", {"mtu": 9000}, "Bearer s3cret-admin-token"),
        ("DELETE", "http://agent:8700/v1/peers/B", None, "Bearer s3cret-admin-token"),
    ]


def test_no_token_no_auth_header_and_context_manager():
    def handler(request: httpx.Request) -> httpx.Response:
        assert "authorization" not in request.headers
        return httpx.Response(200, json=[1, 2])

    with ApiClient("http://agent", transport=httpx.MockTransport(handler)) as c:
        assert c.get("/v1/networks") == [1, 2]


def test_empty_answers_are_none():
    c = make(lambda r: httpx.Response(202))
    assert c.delete("/v1/expansions/1") is None


def test_path_quotes_each_part():
    assert path("v1", "peers", "B") == "/v1/peers/B"
    assert path("v1", "peers", "a/b c") == "/v1/peers/a%2Fb%20c"
    assert path("v1", "expansions", 7) == "/v1/expansions/7"


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, Invalid),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (422, Invalid),
        (502, PeerError),
        (500, IntercloudError),
        (503, IntercloudError),
    ],
)
def test_error_bodies_map_to_exceptions(status, cls):
    body = {"error": {"code": "x", "message": f"cidr: bad thing {status}", "field": "cidr"}}
    c = make(lambda r: httpx.Response(status, json=body))
    with pytest.raises(cls) as info:
        c.post("/v1/expansions", {"network": "n"})
    assert type(info.value) is cls
    assert info.value.message == f"cidr: bad thing {status}"
    assert info.value.field == "cidr"
    assert info.value.status == status


def test_peer_error_keeps_status():
    body = {"error": {"code": "peer_error", "message": "peer B refused: 409", "field": None}}
    c = make(lambda r: httpx.Response(502, json=body))
    with pytest.raises(PeerError) as info:
        c.get("/v1/expansions/1")
    assert info.value.status == 502
    assert str(info.value) == "peer B refused: 409"


def test_non_json_error_body():
    c = make(lambda r: httpx.Response(500, text="<html>Internal\nServer Error</html>"))
    with pytest.raises(IntercloudError) as info:
        c.get("/v1/status")
    assert (
        info.value.message == "HTTP 500 Internal Server Error: <html>Internal Server Error</html>"
    )


def test_framework_detail_body():
    c = make(lambda r: httpx.Response(404, json={"detail": "Not Found"}))
    with pytest.raises(NotFound, match="Not Found"):
        c.get("/v1/nothing")


def test_non_json_success_body():
    c = make(lambda r: httpx.Response(200, text="hello"))
    with pytest.raises(IntercloudError, match="not JSON"):
        c.get("/v1/status")


def test_connect_error_is_one_clean_line():
    def handler(request):
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    c = make(handler, url="http://10.0.0.1:8700")
    with pytest.raises(IntercloudError) as info:
        c.get("/v1/status")
    assert type(info.value) is IntercloudError
    assert str(info.value) == "cannot reach the agent at http://10.0.0.1:8700: connection refused"


def test_timeout_is_one_clean_line():
    def handler(request):
        raise httpx.ReadTimeout("timed out", request=request)

    c = ApiClient("http://agent", timeout=2.5, transport=httpx.MockTransport(handler))
    with pytest.raises(IntercloudError) as info:
        c.get("/v1/status")
    assert str(info.value) == "the agent at http://agent did not answer within 2.5s (timed out)"


def test_real_connection_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = ApiClient(f"http://127.0.0.1:{port}", timeout=5)
    with pytest.raises(IntercloudError) as info:
        c.get("/v1/status")
    assert (
        str(info.value) == f"cannot reach the agent at http://127.0.0.1:{port}: connection refused"
    )
