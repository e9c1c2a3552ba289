"""The tenant API proxy's rules (domain/proxy.py), the peer's answer parser and the per-project
rate limit, with hostile input."""

from __future__ import annotations

import pytest

from intercloud.api.proxy import Buckets
from intercloud.domain import proxy
from intercloud.errors import Forbidden, Invalid, PeerError
from intercloud.federation import peers


@pytest.mark.parametrize(
    "good", ["v2.0/ports", "v2.0/ports/", "v2.1/servers/detail", "v2.0/ports.json", "v2.0"]
)
def test_paths_below_the_endpoint_pass(good):
    assert proxy.path(good) == good.rstrip("/")


@pytest.mark.parametrize(
    "bad",
    [
        "..",
        "v2.0/../../v3",
        "./v2.0",
        "v2.0//ports",
        "/v2.0",
        "http://198.51.100.1/x",
        "//198.51.100.1/x",
        "v2.0/%2e%2e",
        "v2.0/ports?x=1",
        "v2.0/ports#x",
        "user@host/x",
        "v2.0/po rts",
        "v2.0/ports\r\nX-Auth-Token: x",
        "v2.0\\..\\x",
        "v2.0/ports\x00",
        "a/" * 40,
        "x" * 1100,
        "v2.0/pörts",
    ],
)
def test_paths_that_could_leave_the_endpoint_are_refused(bad):
    with pytest.raises(Invalid) as exc:
        proxy.path(bad)
    assert exc.value.field == "path"


def test_service_types_are_checked_then_allowed():
    assert proxy.service_type("network", ["network"]) == "network"
    with pytest.raises(Forbidden, match="'compute' is not allowed"):
        proxy.service_type("compute", ["network"])
    for bad in ("Network", "net work", "", "a" * 40, "../x", None, 3):
        with pytest.raises(Invalid):
            proxy.service_type(bad)
    assert proxy.service_types(["network", "compute", "network"]) == ["compute", "network"]
    with pytest.raises(Invalid, match="proxy_services"):
        proxy.service_types(["ok", "NOT OK"])


def test_only_the_headers_that_matter_pass_and_values_cannot_split():
    given = [
        ("X-Auth-Token", "secret"),
        ("Authorization", "Bearer secret"),
        ("Host", "evil"),
        ("Connection", "keep-alive, X-Auth-Token"),
        ("Transfer-Encoding", "chunked"),
        ("Content-Type", "application/json"),
        ("OpenStack-API-Version", "compute 2.79"),
    ]
    assert proxy.headers(given) == (
        ("content-type", "application/json"),
        ("openstack-api-version", "compute 2.79"),
    )
    with pytest.raises(Invalid, match="content-type"):
        proxy.headers([("Content-Type", "a\r\nX-Auth-Token: x")])
    with pytest.raises(Invalid):
        proxy.headers("content-type: x")


def test_query_pairs_keep_order_and_repeats_and_are_bounded():
    assert proxy.query("fields=id&fields=name&name=") == (
        ("fields", "id"),
        ("fields", "name"),
        ("name", ""),
    )
    with pytest.raises(Invalid, match="query"):
        proxy.query("&".join(f"a{i}=1" for i in range(65)))
    with pytest.raises(Invalid, match="query"):
        proxy.query("a=%0d%0a")
    with pytest.raises(Invalid, match="query"):
        proxy.pairs_checked([["a", 1]])


def test_the_peers_answer_head_is_checked_before_anything_of_it_is_used():
    ok = peers._checked_head("B", 201, [["Content-Type", "application/json"], ["Set-Cookie", "x"]])
    assert ok == proxy.Answer(201, (("content-type", "application/json"),))
    bad = [
        (700, []),
        (101, []),
        (True, []),
        ("200", []),
        (200, [["Content-Type", "a\nb"]]),
        (200, "x"),
        (200, [["Content-Type"]]),
    ]
    for status, headers in bad:
        with pytest.raises(PeerError, match="^peer B: its proxied answer is not valid"):
            peers._checked_head("B", status, headers)


def test_the_rate_limit_is_a_bucket_per_project():
    b = Buckets(rate=1.0, burst=2)
    assert [b.take("p1", now=0.0) for _ in range(3)] == [0.0, 0.0, 1.0]
    assert b.take("p2", now=0.0) == 0.0  # counted apart
    assert b.take("p1", now=1.0) == 0.0  # one more a second later
    assert b.take("p1", now=1.0) > 0
