"""Validation of names, addresses, CIDRs and ids (issue 13, finding 5): no trailing newline, no
IPv6 zone id, no prefix where an address belongs, ASCII only; and the same values refused by
the admin and federation APIs."""

from __future__ import annotations

import json
import secrets

import pytest

from intercloud.domain import naming
from intercloud.domain import validation as v
from intercloud.errors import Invalid
from intercloud.federation import signing

BAD_NAMES = [
    "net9\n",
    "net9\r",
    "net\n9",
    " net9",
    "net9 ",
    "nét9",
    "net٩",
    "ｎｅｔ9",
    "",
    "a" * 64,
]
BAD_ADDRESSES = [
    "fe80::1%x\nnetns exec pwn id",
    "fe80::1%eth0",
    "198.18.0.9\nnetns add pwn",
    "198.18.0.9\n",
    "198.18.0.0/24",
    "0.0.0.0/0",
    "198.18.0.9/32",
    " 198.18.0.9",
    "١٩٨.18.0.9",
    "0.0.0.0",
    "::",
    "224.0.0.1",
    "255.255.255.255",
    "x" * 1000,
    198180009,
    None,
]
BAD_CIDRS = ["fd00::%;$(id)/64", "fd00::%eth0/64", "10.0.0.0/24\n", "10.0.0.1/24", "10.0.0.0", "x"]
BAD_UIDS = [
    "０b6f3a52-0000-4000-8000-000000000001",  # fullwidth digit
    "ab\u0663def0-0000-4000-8000-000000000001",  # Arabic-Indic digit: isalnum() took it
    "0b6f3a52-0000-4000-8000-000000000001\n",
    "0B6F3A52-0000-4000-8000-000000000001",
    "abcdef012345",
    "../../etc/passwd",
]


@pytest.mark.parametrize("value", BAD_NAMES)
def test_bad_names_are_refused(value):
    with pytest.raises(Invalid):
        v.name(value)


def test_good_names_pass():
    assert v.name("net9") == "net9" and v.name("A.x_y-1") == "A.x_y-1"


@pytest.mark.parametrize("value", BAD_ADDRESSES)
def test_bad_addresses_are_refused(value):
    with pytest.raises(Invalid) as exc:
        v.ip_address(value, "underlay_endpoint")
    assert "\n" not in exc.value.message and len(exc.value.message) < 300


def test_addresses_are_plain_and_canonical():
    assert v.ip_address("198.18.0.9", "x") == "198.18.0.9"
    assert v.ip_address("FD00:0::1", "x") == "fd00::1"
    assert v.ip_address("::ffff:198.18.0.9", "x") == "198.18.0.9"  # IPv4-mapped: the IPv4 one


@pytest.mark.parametrize("value", BAD_CIDRS)
def test_bad_cidrs_are_refused(value):
    with pytest.raises(Invalid):
        v.cidr(value)


def test_good_cidrs_pass():
    assert v.cidr("10.0.0.0/24") == "10.0.0.0/24" and v.cidr("fd00::/64") == "fd00::/64"


@pytest.mark.parametrize("value", BAD_UIDS)
def test_bad_uids_are_refused(value):
    with pytest.raises(Invalid):
        v.uid(value)


def test_mac_and_prefix_take_no_trailing_newline():
    with pytest.raises(Invalid):
        v.port_list([["fa:16:3e:00:00:01\n", "10.0.0.5"]], "10.0.0.0/24")
    with pytest.raises(Invalid):
        naming.check_prefix("ic\n")
    with pytest.raises(Invalid):
        v.url("http://198.18.1.2:8700\n")


# -- the same values at the APIs ------------------------------------------------------------


@pytest.mark.parametrize(
    "field,value",
    [
        ("name", "net9\n"),
        ("underlay_endpoint", "fe80::1%x\nnetns exec pwn id"),
        ("underlay_endpoint", "198.18.5.0/24"),
    ],
)
def test_admin_api_refuses_bad_peer_values(pair, field, value):
    a, _ = pair
    body = {
        "name": "D",
        "federation_url": "http://198.18.5.2:8700",
        "underlay_endpoint": "198.18.5.2",
        "key": secrets.token_hex(16),
        field: value,
    }
    r = a.admin("POST", "/v1/peers", body)
    assert r.status_code == 422, r.text
    assert a.admin("GET", "/v1/peers").json()[-1]["name"] == "B"  # nothing added


def test_admin_api_refuses_a_scoped_local_endpoint(pair):
    a, _ = pair
    r = a.admin(
        "POST", "/v1/links", {"peer": "B", "local_endpoint": "fe80::1%x\nnetns exec pwn id"}
    )
    assert r.status_code in (409, 422), r.text


def _as_peer(agent, caller: str, key: str, method: str, path: str, body: dict):
    raw = json.dumps(body).encode()
    headers = signing.sign(caller, agent.name, key, method, path, raw)
    headers["Content-Type"] = "application/json"
    return agent.http.request(method, path, content=raw, headers=headers)


def _key(agent, name: str) -> str:
    from sqlalchemy import select

    from intercloud.store import models as m

    with agent.ctx.store.session() as s:
        return s.scalar(select(m.Peer.key).where(m.Peer.name == name))


GOOD_UID = "0b6f3a52-0000-4000-8000-0000000000c1"
MANY = ["A"] * 300


@pytest.mark.parametrize(
    "uid,body",
    [
        (GOOD_UID, {"project": "p1", "network": "net9\n", "cidr": "10.9.0.0/24"}),
        (GOOD_UID, {"project": "p1\n", "network": "net9", "cidr": "10.9.0.0/24"}),
        (GOOD_UID, {"project": "p1", "network": "net9", "cidr": "fd00::%;$(id)/64"}),
        (GOOD_UID, {"project": "p1", "network": "net9", "cidr": "10.9.0.0/24", "members": ["A\n"]}),
        (GOOD_UID, {"project": "p1", "network": "n", "cidr": "10.9.0.0/24", "members": MANY}),
        (GOOD_UID, {"project": "p1", "network": "n" * 5000, "cidr": "10.9.0.0/24"}),
        (GOOD_UID, {"project": 1, "network": "n", "cidr": "10.9.0.0/24"}),
        ("ab\u0663def0-0000-4000-8000-000000000001", {"project": "p1", "network": "n",
                                                       "cidr": "10.9.0.0/24"}),
    ],
)  # fmt: skip
def test_federation_api_refuses_bad_replicas(pair, uid, body):
    a, b = pair
    path = f"/v1/federation/replicas/{uid}"
    r = _as_peer(b, "A", _key(b, "A"), "PUT", path, body)
    assert r.status_code == 422, r.text
    assert b.admin("GET", "/v1/replicas").json() == []


@pytest.mark.parametrize(
    "path,body",
    [
        ("/replicas/{uid}/vni", {"vni": 2**24}),
        ("/replicas/{uid}/vni", {"vni": "7"}),
        ("/replicas/{uid}/vni", {"vni": True}),
        ("/replicas/{uid}/vni", {"exclude": [0]}),
        ("/replicas/{uid}/vni", {"exclude": list(range(1, 70_000))}),
        ("/replicas/{uid}/vni", {"vni_min": 0}),
        ("/replicas/{uid}/relays", {"relays": [["A\n", "C"]]}),
        ("/replicas/{uid}/relays", {"relays": [["A", "C", "D"]]}),
        ("/replicas/{uid}/relays", {"relays": "A>C"}),
        ("/adjacencies/{uid}", {"origin": "A\n", "exclude": []}),
        ("/expansions/{uid}/direct", {"direct": ["C\n"]}),
        ("/expansions/{uid}/direct", {"direct": ["C"] * 300}),
        ("/expansions/{uid}/ports", {"ports": [["fa:16:3e:00:00:01", "x" * 100]]}),
        ("/expansions/{uid}/ports", {"ports": "all"}),
    ],
)
def test_federation_api_refuses_bad_bodies(pair, path, body):
    a, b = pair
    r = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]})
    uid = r.json()["id"]
    for _ in range(3):
        a.reconcile()
        b.reconcile()
    before = b.admin("GET", "/v1/replicas").json()
    method = "PUT"
    r = _as_peer(b, "A", _key(b, "A"), method, "/v1/federation" + path.format(uid=uid), body)
    assert r.status_code == 422, r.text
    assert b.admin("GET", "/v1/replicas").json() == before


def test_a_vni_outside_this_agents_range_is_refused(pair):
    a, b = pair
    b.ctx.cfg.dataplane.vni_min, b.ctx.cfg.dataplane.vni_max = 100, 200
    r = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"], "vni": 50})
    uid = r.json()["id"]
    for _ in range(3):
        a.reconcile()
        b.reconcile()
    exp = a.user("p1", "GET", f"/v1/expansions/{uid}").json()
    assert exp["peers"][0]["status"] == "error", exp
    assert "vni" in exp["peers"][0]["reason"]


@pytest.mark.parametrize("a_range,agreed", [((1, 2**24 - 1), 100), ((300, 400), None)])
def test_the_vni_agreed_lies_in_both_agents_ranges(pair, a_range, agreed):
    a, b = pair
    a.ctx.cfg.dataplane.vni_min, a.ctx.cfg.dataplane.vni_max = a_range
    b.ctx.cfg.dataplane.vni_min, b.ctx.cfg.dataplane.vni_max = 100, 200
    r = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]})
    uid = r.json()["id"]
    for _ in range(3):
        a.reconcile()
        b.reconcile()
    target = a.user("p1", "GET", f"/v1/expansions/{uid}").json()["peers"][0]
    if agreed is None:
        assert target["status"] == "error" and "both agents' ranges" in target["reason"], target
    else:
        assert (target["status"], target["vni"]) == ("active", agreed), target
