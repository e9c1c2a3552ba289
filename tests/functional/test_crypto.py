"""IKE/IPsec policies: safe defaults, weak choices refused, proposals, and the API around them
(PSKs are write-only)."""

from __future__ import annotations

import json

import pytest

from intercloud.domain import crypto
from intercloud.drivers.ipsec.noop import NO_IPSEC
from intercloud.errors import Invalid


def test_defaults_are_safe():
    ike, esp = crypto.IkePolicy(), crypto.IpsecPolicy()
    assert ike.version == 2
    assert ike.proposals() == ("aes256gcm16-prfsha256-ecp256-curve25519",)
    assert esp.proposals() == ("aes256gcm16-ecp256",)  # PFS on
    assert esp.mode == "transport"


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"encryption": ["des"]}, "encryption"),
        ({"encryption": ["3des"]}, "encryption"),
        ({"encryption": ["aes256"], "integrity": ["md5"]}, "integrity"),
        ({"dh_groups": ["modp1024"]}, "dh_groups"),
        ({"dh_groups": ["modp768"]}, "dh_groups"),
        ({"prf": ["prfmd5"]}, "prf"),
        ({"encryption": ["aes256"], "integrity": []}, "integrity"),
        ({"encryption": ["rot13"]}, "encryption"),
        ({"version": 3}, "version"),
        ({"lifetime": 1}, "lifetime"),
    ],
)
def test_weak_or_bad_ike_choices_are_refused(kwargs, field):
    with pytest.raises(Invalid) as exc:
        crypto.ike_policy("p", **kwargs)
    assert exc.value.field == field
    assert field in exc.value.message


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"encryption": ["des"]}, "encryption"),
        ({"pfs_group": "modp1024"}, "pfs_group"),
        ({"mode": "beet"}, "mode"),
        ({"encryption": ["aes128"], "integrity": ["md5"]}, "integrity"),
    ],
)
def test_weak_or_bad_esp_choices_are_refused(kwargs, field):
    with pytest.raises(Invalid) as exc:
        crypto.ipsec_policy("p", **kwargs)
    assert exc.value.field == field


def test_non_aead_proposals():
    ike = crypto.ike_policy(
        "cbc", encryption=["aes256"], integrity=["sha256"], dh_groups=["modp3072"]
    )
    assert ike.proposals() == ("aes256-sha256-prfsha256-modp3072",)
    esp = crypto.ipsec_policy(
        "cbc", encryption=["aes128"], integrity=["sha256"], pfs_group="none", mode="tunnel"
    )
    assert esp.proposals() == ("aes128-sha256",)


def test_policy_api_and_links_using_them(pair):
    a, _ = pair
    r = a.admin("POST", "/v1/ike-policies", {"name": "strong", "dh_groups": ["curve25519"]})
    assert r.status_code == 201, r.text
    assert r.json()["proposals"] == ["aes256gcm16-prfsha256-curve25519"]
    r = a.admin("POST", "/v1/ipsec-policies", {"name": "tun", "mode": "tunnel"})
    assert r.status_code == 201, r.text
    r = a.admin("PATCH", "/v1/links/B", {"ike_policy": "strong", "ipsec_policy": "tun"})
    assert r.status_code == 200, r.text
    assert (r.json()["ike_policy"], r.json()["ipsec_policy"]) == ("strong", "tun")
    assert a.admin("DELETE", "/v1/ike-policies/strong").status_code == 409
    r = a.admin("POST", "/v1/ike-policies", {"name": "weak", "encryption": ["des"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "encryption"
    assert [p["name"] for p in a.admin("GET", "/v1/ike-policies").json()] == ["strong"]
    r = a.admin("PATCH", "/v1/links/B", {"ike_policy": "nope"})
    assert r.status_code == 404 and r.json()["error"]["field"] == "ike_policy"


def test_psk_is_write_only(pair, caplog):
    a, _ = pair
    secret = "very-secret-psk-0123456789"
    r = a.admin("PATCH", "/v1/links/B", {"psk": secret})
    assert r.status_code == 200
    caplog.set_level("DEBUG")
    a.reconcile()
    everything = json.dumps(
        [
            a.admin("GET", "/v1/links").json(),
            a.admin("GET", "/v1/links/B").json(),
            a.admin("GET", "/v1/status").json(),
        ]
    )
    assert secret not in everything
    assert "psk" not in a.admin("GET", "/v1/links/B").json()
    assert secret not in caplog.text


def test_encrypted_link_needs_psk_and_a_driver(pair, tmp_path):
    a, _ = pair
    a.admin("DELETE", "/v1/agreements/B")
    assert a.admin("DELETE", "/v1/links/B").status_code == 204
    r = a.admin("POST", "/v1/links", {"peer": "B", "local_endpoint": a.ip})
    assert r.status_code == 422 and r.json()["error"]["field"] == "psk"
    r = a.admin(
        "POST",
        "/v1/links",
        {"peer": "B", "local_endpoint": a.ip, "encrypted": False, "psk": "x" * 20},
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "encrypted"
    r = a.admin("POST", "/v1/links", {"peer": "B", "local_endpoint": a.ip, "encrypted": False})
    assert r.status_code == 201 and r.json()["encrypted"] is False
    a.ctx.ipsec = NO_IPSEC  # an agent configured with ipsec.driver = none
    a.admin("DELETE", "/v1/links/B")
    r = a.admin("POST", "/v1/links", {"peer": "B", "local_endpoint": a.ip, "psk": "x" * 20})
    assert r.status_code == 422 and "no IPsec driver" in r.json()["error"]["message"]


def test_rate_limits_in_the_api(pair):
    a, _ = pair
    r = a.admin("PATCH", "/v1/agreements/B", {"default_rate_mbit": 20})
    assert r.json()["default_rate_mbit"] == 20
    exp = a.user("p1", "POST", "/v1/expansions", {"network": "net1", "peers": ["B"]}).json()
    assert exp["peers"][0]["rate_mbit"] == 20 and exp["rate_mbit"] is None
    r = a.user("p1", "PATCH", f"/v1/expansions/{exp['id']}", {"rate_mbit": 50})
    assert r.json()["peers"][0]["rate_mbit"] == 50
    r = a.user("p1", "PATCH", f"/v1/expansions/{exp['id']}", {"rate_mbit": -5})
    assert r.status_code == 422 and r.json()["error"]["field"] == "rate_mbit"
    r = a.user("p2", "POST", "/v1/expansions", {"network": "net2", "peers": ["B"], "rate_mbit": 0})
    assert r.status_code == 422 and r.json()["error"]["field"] == "rate_mbit"
