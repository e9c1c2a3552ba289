"""The pure parts: validation, VNI allocation, naming within 15 characters, config."""

from __future__ import annotations

import pytest

from intercloud import config
from intercloud.domain import naming, owners, validation, vni
from intercloud.domain.ipsec_backend import LIBIPSEC, lanes_in_use
from intercloud.errors import Conflict, Invalid


@pytest.mark.parametrize("value", ["10.0.0.0/24", "192.168.1.0/30", "fd00::/64"])
def test_valid_cidrs(value):
    assert validation.cidr(value) == value


@pytest.mark.parametrize("value", ["10.0.0.0/33", "10.0.0.1/24", "nope", "", 5, None])
def test_invalid_cidrs_name_the_field(value):
    with pytest.raises(Invalid) as exc:
        validation.cidr(value, "cidr")
    assert exc.value.field == "cidr"
    assert exc.value.message.startswith("cidr:")


@pytest.mark.parametrize("value", [1, 4096, 2**24 - 1])
def test_valid_vnis(value):
    assert validation.vni(value) == value


@pytest.mark.parametrize("value", [0, -1, 2**24, "5", 1.5, True, None])
def test_invalid_vnis(value):
    with pytest.raises(Invalid) as exc:
        validation.vni(value)
    assert exc.value.field == "vni"


@pytest.mark.parametrize("value", ["A", "cloud-b", "p1.x_y", "a" * 63])
def test_valid_names(value):
    assert validation.name(value) == value


@pytest.mark.parametrize("value", ["", "-a", "a b", "a/b", "a" * 64, 3])
def test_invalid_names(value):
    with pytest.raises(Invalid):
        validation.name(value)


def test_endpoints_and_urls():
    assert validation.ip_address("198.18.1.2", "local_endpoint") == "198.18.1.2"
    for bad in ("0.0.0.0", "224.0.0.1", "198.18.1", "x"):
        with pytest.raises(Invalid):
            validation.ip_address(bad, "local_endpoint")
    assert validation.url("http://198.18.1.2:8700/") == "http://198.18.1.2:8700"
    for bad in ("198.18.1.2:8700", "ftp://x", "http://", 7):
        with pytest.raises(Invalid):
            validation.url(bad)


def test_tunnel_type_support():
    assert validation.tunnel_type("vxlan") == "vxlan"
    with pytest.raises(Invalid, match="not supported"):
        validation.tunnel_type("gre")
    with pytest.raises(Invalid, match="must be one of"):
        validation.tunnel_type("ipip")


def test_lowest_free_vni():
    assert vni.lowest_free([]) == 1
    assert vni.lowest_free([1, 2, 4]) == 3
    assert vni.lowest_free([5, 6], low=5, high=10) == 7
    assert vni.lowest_free([100], low=5, high=10) == 5
    with pytest.raises(Conflict):
        vni.lowest_free([5, 6], low=5, high=6)


def test_agree_takes_the_lowest_free_on_both_sides():
    assert vni.agree([1, 2], [3]) == 4
    assert vni.agree([1], [2], requested=7) == 7
    with pytest.raises(Conflict):
        vni.agree([1], [7], requested=7)
    with pytest.raises(Conflict):
        vni.agree([7], [], requested=7)


@pytest.mark.parametrize("prefix", ["ic", "x", "abcd"])
def test_names_fit_in_15_characters(prefix):
    longest_key = owners.expansion(10**8).key
    names = [
        naming.bridge(prefix, longest_key),
        naming.vxlan(prefix, 2**24 - 1),
        *naming.patch(prefix, longest_key),
    ]
    assert all(len(n) <= naming.IFNAME_MAX for n in names), names
    assert len(set(names)) == 4
    assert all(naming.owned(prefix, n) for n in names)


def test_names_too_long_are_refused():
    with pytest.raises(Invalid):
        naming.bridge("abcd", "e" + "9" * 11)
    with pytest.raises(Invalid):
        naming.check_prefix("toolong")
    assert not naming.owned("ic", "icx1") and not naming.owned("ic", "eth0")


def _cfg(**agent):
    data = {
        "agent": {"name": "A", "admin_token": "a" * 32, "plain_http": True, **agent},
        "projects": [{"name": "p1", "token": "t" * 32}],
        "networks": [
            {"name": "net1", "project": "p1", "cidr": "10.0.0.0/24", "interface": "tn-net1"}
        ],
    }
    return data


def test_config_env_overrides_file():
    cfg = config.parse(
        _cfg(port=8700),
        env={"INTERCLOUD_AGENT_PORT": "9001", "INTERCLOUD_DATAPLANE_DRIVER": "fake"},
    )
    assert cfg.agent.port == 9001
    assert cfg.dataplane.driver == "fake"
    assert cfg.networks[0].interface == "tn-net1"


@pytest.mark.parametrize(
    "mutate,field",
    [
        (lambda d: d["agent"].update(admin_token="short"), "agent.admin_token"),
        (lambda d: d["agent"].update(bogus=1), "agent.bogus"),
        (lambda d: d["networks"][0].update(cidr="10.0.0.1/24"), "networks[net1].cidr"),
        (lambda d: d["networks"][0].update(project="p9"), "networks.project"),
        (lambda d: d.update(extra={}), "extra"),
        (lambda d: d["agent"].update(port="eighty"), "agent.port"),
    ],
)
def test_config_errors_name_the_key(mutate, field):
    data = _cfg()
    mutate(data)
    with pytest.raises(Invalid) as exc:
        config.parse(data, env={})
    assert exc.value.field == field


def test_config_file_errors(tmp_path):
    with pytest.raises(Invalid, match="not found"):
        config.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[agent\n")
    with pytest.raises(Invalid, match="not valid TOML"):
        config.load(bad)


def test_lanes_in_use() -> None:
    assert lanes_in_use(3, LIBIPSEC) == 3
    assert lanes_in_use(3, "kernel") == 1  # kernel ESP already encrypts on the sending CPU
    assert lanes_in_use(3, None) == 1  # no charon said yet
