"""Encryption lanes without charon: each lane's strongswan.conf and connection, the steering
rules, LanedIpsec over in-memory lanes, and the `ipsec.lanes` setting."""

from __future__ import annotations

import pytest

from intercloud import config
from intercloud.config import checks as config_checks
from intercloud.domain import lane_balance
from intercloud.drivers import ipsec as ipsec_drivers
from intercloud.drivers.ipsec import lane_steering, lanes
from intercloud.drivers.ipsec.base import ConnectionSpec
from intercloud.drivers.ipsec.fake import FakeIpsec
from intercloud.drivers.ipsec.strongswan import conn_dict
from intercloud.errors import DriverError, Invalid
from intercloud.lab import charon
from intercloud.reconciler.connections import status_view

SPEC = ConnectionSpec("link-B", "198.18.0.1", "198.18.0.2", "A", "B", "s3cret-psk")


def test_each_lane_charon_has_its_own_ports_mark_and_table():
    texts = [charon.conf_text("unix:///w/c.vici", "/w/c.log", lane=k) for k in (0, 1, 3)]
    assert "port_nat_t" not in texts[0] and "fwmark = 0x1c1" in texts[0]
    for text, k in zip(texts[1:], (1, 3), strict=True):
        assert f"port = {4500 + 10 * k}\n" in text and f"port_nat_t = {4501 + 10 * k}\n" in text
        assert f"routing_table = {220 + k}\n" in text and f"routing_table_prio = {220 + k}" in text
        assert f"fwmark = 0x{0x1C1 + k:x}\n" in text
    for text in texts:  # every lane's policy rule skips every lane's own packets
        assert "fwmark = !0x1c0/0xfff0" in text
    assert [charon.lane_port(k) for k in (0, 1, 2)] == [4500, 4511, 4521]
    assert config_checks.MAX_LANES == charon.MAX_LANES
    with pytest.raises(DriverError, match="lane 8 out of range"):
        charon.conf_text("unix:///w/c.vici", "/w/c.log", lane=charon.MAX_LANES)


def test_a_further_lane_connects_to_the_peers_lane_port_and_does_not_trap():
    lane0 = conn_dict(SPEC, "kernel-libipsec")["link-B"]
    assert "local_port" not in lane0 and lane0["children"]["link-B"]["start_action"] == "trap"
    lane2 = conn_dict(lanes.lane_spec(SPEC, 2), "kernel-libipsec")["link-B"]
    assert lane2["local_port"] == lane2["remote_port"] == "4521"
    assert lane2["children"]["link-B"]["start_action"] == "none"
    # same crypto, identities and selectors as lane 0
    for key in ("proposals", "local", "remote", "local_addrs", "remote_addrs"):
        assert lane2[key] == lane0[key]
    assert (
        lane2["children"]["link-B"]["esp_proposals"] == lane0["children"]["link-B"]["esp_proposals"]
    )


def test_steering_places_each_flow_on_a_lane_and_routes_each_lane_to_its_table():
    text = lanes.ruleset(3, 4789)
    assert "type route hook output" in text  # a changed mark re-routes the packet
    # a flow without a lane (or on a lane that is down) takes the next slot's lane, pinned in
    # its conntrack entry; every packet then carries its flow's lane as its mark
    assert (
        "udp dport 4789 ct mark and 0xfffffff0 != 0x1d0 ct mark set numgen inc mod 64 map @slots"
        in text
    )
    assert "udp dport 4789 ct mark @down ct mark set numgen inc mod 64 map @slots" in text
    assert "udp dport 4789 meta mark set ct mark" in text
    assert 'udp dport 4789 ct timeout set "idle_gap"' in text and "unreplied : 2" in text
    assert "elements = { 0 : 0x1d0, 1 : 0x1d1, 2 : 0x1d2, 3 : 0x1d0," in text
    assert text.count("counter name lane") == 3
    assert text.count("{") == text.count("}")
    assert lanes.wanted_rules(1) == set()
    assert lanes.wanted_rules(3) == {(111, 0x1D1, 221), (112, 0x1D2, 222)}
    with pytest.raises(DriverError, match="not in 1..8"):
        lanes.LaneSteering(9, 4789)


def test_only_checked_numbers_reach_nft():
    good = lane_balance.even(2)
    with pytest.raises(DriverError, match="VXLAN port"):
        lanes.ruleset(2, 70000)
    with pytest.raises(DriverError, match="VXLAN port"):
        lanes.ruleset(2, "4789; flush ruleset")  # type: ignore[arg-type]
    with pytest.raises(DriverError, match="out of range"):
        lanes.ruleset(2, 4789, lane_balance.Decision((0, 2) * 32))
    with pytest.raises(DriverError, match="out of range"):
        lanes.ruleset(2, 4789, lane_balance.Decision(good.slots[:10]))
    with pytest.raises(DriverError, match="is down"):
        lanes.ruleset(2, 4789, lane_balance.Decision(good.slots, frozenset({1})))
    with pytest.raises(DriverError, match="is down"):
        lanes.ruleset(2, 4789, lane_balance.Decision((0,) * 64, frozenset({0})))
    script = lane_steering.placement_script(lane_balance.Decision((0,) * 64, frozenset({1})))
    assert "flush map ip intercloud_lanes slots" in script
    assert "add element ip intercloud_lanes down { 0x1d1 }" in script


class Steering(lanes.LaneSteering):
    """Records what it was asked to do instead of running nft and ip."""

    def __init__(self, n: int) -> None:
        super().__init__(n, 4789)
        self.ensured: list[int] = []

    def ensure(self) -> bool:
        self.ensured.append(self.lanes)
        return True

    def counters(self) -> list[int] | None:
        return None  # no table: the rebalancer's ticks do nothing


class Broken(FakeIpsec):
    def ensure_connection(self, spec: ConnectionSpec, *, initiate: bool = True) -> bool:
        raise DriverError("strongSwan VICI socket /w/lane1.vici: No such file or directory")

    def connections(self):
        raise DriverError("strongSwan VICI socket /w/lane1.vici: No such file or directory")


def test_laned_ipsec_gives_each_lane_its_connection_and_reports_them():
    fakes = [FakeIpsec(), FakeIpsec(), FakeIpsec()]
    laned = lanes.LanedIpsec(fakes, Steering(3))
    assert laned.ensure_connection(SPEC) is True
    assert fakes[0].specs["link-B"] == SPEC
    assert [f.specs["link-B"].ike_port for f in fakes[1:]] == [4511, 4521]
    assert laned.ensure_connection(SPEC) is False  # idempotent on every lane
    st = laned.connections()["link-B"]
    assert st.up and [lane.up for lane in st.lanes] == [True, True]
    view = status_view("kernel-libipsec", st)
    assert [(v["lane"], v["up"]) for v in view["lanes"]] == [(1, True), (2, True)]
    assert laned.ensure_steering() is True and laned.steering.ensured == [3]
    assert laned.balancer._thread is not None  # rebalancing from now on
    laned.close()
    assert laned.balancer._thread is None
    assert laned.remove_connection("link-B") is True
    assert all("link-B" not in f.specs for f in fakes)
    assert laned.remove_connection("link-B") is False


def test_a_broken_lane_never_fails_the_link_and_says_why():
    laned = lanes.LanedIpsec([FakeIpsec(), Broken()], Steering(2))
    assert laned.ensure_connection(SPEC) is True  # lane 0 loaded
    st = laned.connections()["link-B"]
    assert st.up  # the link itself is up: its traffic goes through lane 0
    assert not st.lanes[0].up and "No such file" in st.lanes[0].last_error
    assert laned.remove_connection("link-B") is True


def test_with_kernel_esp_further_lanes_are_not_used():
    fakes = [FakeIpsec("kernel"), FakeIpsec("kernel")]
    laned = lanes.LanedIpsec(fakes, Steering(2))
    laned.ensure_connection(SPEC)
    assert fakes[1].specs == {} and laned.connections()["link-B"].lanes == []
    assert laned.ensure_steering() is True and laned.steering.lanes == 1  # steering removed
    assert "lanes" not in status_view("kernel", laned.connections()["link-B"])


BASE = {"agent": {"name": "A", "admin_token": "x" * 16, "plain_http": True}}


def test_lanes_setting_builds_one_driver_per_charon(monkeypatch):
    cfg = config.parse({**BASE, "ipsec": {"lanes": ["/run/c1.vici", "/run/c2.vici"]}}, env={})
    assert cfg.ipsec.lanes == ["/run/c1.vici", "/run/c2.vici"]
    env = {"INTERCLOUD_IPSEC_LANES": "/run/c1.vici, /run/c2.vici"}
    assert config.parse(BASE, env=env).ipsec.lanes == ["/run/c1.vici", "/run/c2.vici"]
    assert config.parse(BASE, env={}).ipsec.lanes == []

    made: list[str] = []
    guards: list[object] = []

    class Recorder(FakeIpsec):
        def __init__(self, path: str, guard=None) -> None:
            super().__init__()
            made.append(path)
            guards.append(guard)

    monkeypatch.setattr("intercloud.drivers.ipsec.strongswan.StrongswanIpsec", Recorder)
    driver = ipsec_drivers.load(cfg)
    assert isinstance(driver, lanes.LanedIpsec)
    assert made == ["/var/run/charon.vici", "/run/c1.vici", "/run/c2.vici"]
    assert guards[0].vxlan_port == 4789 and guards[1:] == [None, None]  # lane 0 guards them all
    assert driver.steering.lanes == 3 and driver.steering.vxlan_port == 4789


@pytest.mark.parametrize(
    "ipsec, match",
    [
        ({"driver": "fake", "lanes": ["/run/c1.vici"]}, "needs the strongswan driver"),
        ({"lanes": ["/run/c1.vici", "/run/c1.vici"]}, "all different"),
        ({"lanes": ["/var/run/charon.vici"]}, "all different"),
        ({"lanes": [f"/run/c{i}.vici" for i in range(8)]}, "at most 7"),
        ({"lanes": [1, 2]}, "expected list"),
    ],
)
def test_bad_lanes_setting_is_refused_naming_the_field(ipsec, match):
    with pytest.raises(Invalid, match=match) as exc:
        config.parse({**BASE, "ipsec": ipsec}, env={})
    assert exc.value.field == "ipsec.lanes"


def test_cli_summary_counts_the_lanes_up():
    from intercloud.cli.output import ipsec_summary

    laned = lanes.LanedIpsec([FakeIpsec(), FakeIpsec(), Broken()], Steering(3))
    laned.ensure_connection(SPEC)
    view = status_view("kernel-libipsec", laned.connections()["link-B"])
    line = ipsec_summary({"encrypted": True, "status": {"ipsec": view}})
    assert line.startswith("ESTABLISHED tunnel UDP-encap") and "lanes 2/3 up" in line, line


def test_the_lab_nat_router_publishes_every_lanes_ports():
    from intercloud.lab.underlay import nat_ruleset

    text = nat_ruleset("198.19.3.2")
    for k in range(charon.MAX_LANES):
        assert f"udp dport {charon.lane_port(k)} dnat to 198.19.3.2" in text


def test_a_connection_left_only_in_a_further_lane_is_listed_for_removal():
    fakes = [FakeIpsec(), FakeIpsec()]
    laned = lanes.LanedIpsec(fakes, Steering(2))
    fakes[1].ensure_connection(lanes.lane_spec(SPEC, 1))  # e.g. lane 0 removed it, lane 1 was away
    st = laned.connections()["link-B"]
    assert st.ike_state == "DOWN" and [lane.up for lane in st.lanes] == [True]
    assert laned.remove_connection("link-B") is True and fakes[1].specs == {}
