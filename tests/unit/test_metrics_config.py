"""`agent.metrics_listen` (config.py): an address and a port, or nothing."""

from __future__ import annotations

import pytest

from intercloud import config
from intercloud.errors import Invalid

BASE = {"agent": {"admin_token": "a" * 32, "plain_http": True}}


def parsed(listen: str) -> config.Config:
    return config.parse({"agent": {**BASE["agent"], "metrics_listen": listen}}, env={})


@pytest.mark.parametrize(
    "listen, address",
    [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:9464", ("::1", 9464))],
)
def test_an_address_and_a_port(listen, address):
    assert config.metrics_address(parsed(listen).agent.metrics_listen) == address


def test_not_served_by_default():
    assert config.parse(BASE, env={}).agent.metrics_listen == ""


@pytest.mark.parametrize("listen", ["9464", "localhost:9464", "127.0.0.1:0", "127.0.0.1:x"])
def test_anything_else_is_refused(listen):
    with pytest.raises(Invalid) as err:
        parsed(listen)
    assert err.value.field == "agent.metrics_listen"
