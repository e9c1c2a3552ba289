"""MSS clamps and rate limits: the plan (pure), the fake driver, and the pure parts of the Linux
driver (nftables text and JSON, tbf parameters)."""

from __future__ import annotations

import dataclasses

import pytest

from intercloud.domain.hoststate import Bridge, HostState, Observed, Vxlan
from intercloud.domain.plan import Step, mss_clamp, plan
from intercloud.drivers.dataplane.base import Dataplane
from intercloud.drivers.dataplane.fake import FakeDataplane
from intercloud.drivers.dataplane.linux import nft
from intercloud.drivers.dataplane.linux.netlink import tbf_params
from intercloud.errors import DriverError

P = "ic"
VX1 = Vxlan("icv100", 100, "198.18.0.1", "198.18.0.2", "icbe1", mss=1310, rate_mbit=50)
VX2 = Vxlan("icv200", 200, "198.18.0.1", "198.18.0.3", "icbe2", mss=1348)
VX3 = Vxlan("icv300", 300, "198.18.0.1", "198.18.0.3", "icbe2")


def state(*objs) -> HostState:
    s = HostState()
    for obj in objs:
        s.add(obj)
    return s


def desired(*vxlans: Vxlan) -> HostState:
    return state(Bridge("icbe1"), Bridge("icbe2"), *(vxlans or (VX1, VX2, VX3)))


def converge(dp: FakeDataplane, want: HostState) -> list[str]:
    steps = plan(want, dp.observe())
    for step in steps:
        getattr(dp, step.verb)(step.obj)
    return [s.describe() for s in steps]


@pytest.fixture
def dp() -> FakeDataplane:
    return FakeDataplane()


# -- plan ---------------------------------------------------------------------------------------


def test_one_clamp_step_for_all_tunnels_then_nothing(dp):
    assert converge(dp, desired()) == [
        "ensure_mss_clamp icv100=1310,icv200=1348",
        "ensure_bridge icbe1",
        "ensure_bridge icbe2",
        "ensure_vxlan icv100",
        "ensure_vxlan icv200",
        "ensure_vxlan icv300",
    ]
    assert dp.clamps == {P: {"icv100": 1310, "icv200": 1348}}
    assert dp.observe().state == desired()
    dp.reset_calls()
    assert converge(dp, desired()) == []
    assert dp.calls == []


def test_changing_an_mss_is_only_the_clamp_step(dp):
    converge(dp, desired())
    links = dict(dp.links)
    new = dataclasses.replace(VX2, mss=1300)
    assert converge(dp, desired(VX1, new, VX3)) == ["ensure_mss_clamp icv100=1310,icv200=1300"]
    assert dp.links == links and all(dp.links[n] is links[n] for n in links)
    assert converge(dp, desired(VX1, new, VX3)) == []


def test_changing_a_rate_updates_the_vxlan_in_place(dp):
    converge(dp, desired())
    link = dp.links["icv100"]
    for rate in (10, 12.5, None, 50):
        want = desired(dataclasses.replace(VX1, rate_mbit=rate), VX2, VX3)
        assert converge(dp, want) == ["ensure_vxlan icv100"]
        assert dp.links["icv100"] is link and link.rate_mbit == rate
        assert dp.observe().state.vxlans["icv100"].rate_mbit == rate
        assert converge(dp, want) == []


def test_rate_and_mss_changes_never_remove(dp):
    converge(dp, desired())
    want = desired(dataclasses.replace(VX1, mss=None, rate_mbit=1), VX2, VX3)
    steps = plan(want, dp.observe())
    assert [s.verb for s in steps] == ["ensure_mss_clamp", "ensure_vxlan"]
    assert steps[0].obj == {"icv200": 1348}


def test_a_changed_remote_still_replaces_and_keeps_the_clamp(dp):
    converge(dp, desired())
    want = desired(dataclasses.replace(VX1, remote="198.18.0.9"), VX2, VX3)
    assert converge(dp, want) == ["remove_link icv100", "ensure_vxlan icv100"]
    assert dp.observe().state.vxlans["icv100"] == want.vxlans["icv100"]


def test_removed_tunnels_leave_the_table_and_no_clamps_remove_it(dp):
    converge(dp, desired())
    assert converge(dp, desired(VX2, VX3)) == [
        "remove_link icv100",
        "ensure_mss_clamp icv200=1348",
    ]
    assert converge(dp, HostState()) == [
        "remove_link icv200",
        "remove_link icv300",
        "remove_link icbe1",
        "remove_link icbe2",
        "ensure_mss_clamp (none)",
    ]
    assert dp.clamps == {} and dp.observe().state == HostState()
    assert converge(dp, HostState()) == []


def test_the_plan_order_puts_clamps_after_removals_and_before_creations():
    observed = state(Bridge("icbe1"), dataclasses.replace(VX1, mss=None))
    verbs = [s.verb for s in plan(desired(), Observed(observed))]
    assert verbs == ["ensure_mss_clamp", "ensure_bridge", "ensure_vxlan", "ensure_vxlan"]
    old = state(Bridge("icbe9"), dataclasses.replace(VX1, name="icv9", master="icbe9"))
    verbs = [s.describe() for s in plan(HostState(), Observed(old))]
    assert verbs == ["remove_link icv9", "remove_link icbe9", "ensure_mss_clamp (none)"]


def test_broken_or_foreign_rules_are_rewritten():
    want = desired()
    for seen in ({"icv100": 1310, "icv200": 0}, {"icv100": 1310, "icv200": 1348, "*": 0}, {}):
        observed = desired()
        observed.mss_clamp = seen
        assert plan(want, Observed(observed)) == [Step("ensure_mss_clamp", mss_clamp(want))]


def test_desired_mss_clamp_comes_from_the_tunnels_only():
    want = desired()
    want.mss_clamp = {"junk": 1}  # ignored: Vxlan.mss is the source
    observed = desired()
    assert plan(want, Observed(observed)) == []
    assert mss_clamp(want) == {"icv100": 1310, "icv200": 1348}


def test_add_keeps_mss_clamp_in_step():
    s = state(VX1)
    assert s.mss_clamp == {"icv100": 1310}
    s.add(dataclasses.replace(VX1, mss=None))
    assert s.mss_clamp == {}


def test_describe_of_the_clamp_step():
    assert Step("ensure_mss_clamp", {"a": 1, "b": 2}).describe() == "ensure_mss_clamp a=1,b=2"
    assert Step("ensure_mss_clamp", {}).describe() == "ensure_mss_clamp (none)"


def test_vxlan_rate_is_kept_in_kbit_and_values_are_checked():
    assert dataclasses.replace(VX1, rate_mbit=33.33333).rate_mbit == 33.333
    assert dataclasses.replace(VX1, rate_mbit=50).rate_mbit == 50.0
    with pytest.raises(ValueError, match="rate_mbit"):
        dataclasses.replace(VX1, rate_mbit=0.0004)
    with pytest.raises(ValueError, match="mss"):
        dataclasses.replace(VX1, mss=40)
    with pytest.raises(ValueError, match="mss"):
        dataclasses.replace(VX1, mss=70000)


# -- the fake and the base class ------------------------------------------------------------------


def test_fake_clamp_verbs(dp):
    dp.ensure_mss_clamp({"icv1": 1300})  # the table of the driver's own prefix
    assert dp.clamps == {P: {"icv1": 1300}}
    other = FakeDataplane("xx")
    other.clamps = dp.clamps  # one host, two agents: each sees its own table only
    assert dp.observe_mss_clamp() == {"icv1": 1300} and other.observe_mss_clamp() == {}
    with pytest.raises(DriverError, match="not in 88..65535"):
        dp.ensure_mss_clamp({"icv1": 10})
    dp.remove_mss_clamp()
    dp.remove_mss_clamp()
    assert dp.clamps == {}
    dp.fail("ensure_mss_clamp")
    with pytest.raises(DriverError):
        dp.ensure_mss_clamp({})


def test_cleanup_removes_the_clamps(dp):
    converge(dp, desired())
    dp.cleanup()
    assert dp.links == {} and dp.clamps == {}


class _NoClamp(Dataplane):
    def observe(self, foreign=()):
        return Observed(HostState())

    ensure_bridge = ensure_vxlan = ensure_patch = attach = detach = remove_link = lambda self, *a: (
        None
    )

    def interface_kind(self, name):
        return None


def test_base_default_observes_nothing_and_refuses_to_clamp():
    dp = _NoClamp(P)
    dp.observe()
    assert dp.observe_mss_clamp() == {}
    dp.ensure_mss_clamp({})
    dp.remove_mss_clamp()
    with pytest.raises(DriverError, match="_NoClamp data plane cannot clamp"):
        dp.ensure_mss_clamp({"icv1": 1300})


# -- nftables text and JSON -----------------------------------------------------------------------


def test_render_is_one_transaction_with_a_syn_gate_a_set_and_four_rules_per_mss_value():
    text = nft.render(P, {"icv2": 1400, "icv100": 1310, "icv101": 1310})
    lines = text.splitlines()
    assert lines[:3] == [
        "add table bridge intercloud_ic",
        "delete table bridge intercloud_ic",
        "table bridge intercloud_ic {",
    ]
    assert "type filter hook forward priority filter; policy accept;" in text
    assert '\t\telements = { "icv100", "icv101" }' in lines
    assert '\t\telements = { "icv2" }' in lines
    gate = lines.index("\tchain mss {")
    assert lines[gate + 2 : gate + 5] == [
        "\t\ttcp flags syn / syn,rst jump clamp",  # the only rule every bridged frame meets
        "\t}",
        "\tchain clamp {",
    ]
    rules = [ln.strip() for ln in lines if "maxseg" in ln]
    assert all(lines.index("\t\t" + rule) > gate + 4 for rule in rules)
    assert len(rules) == 8 and rules[0].startswith("iifname @mss_1310 meta protocol ip tcp")
    assert rules[0].endswith("tcp option maxseg size > 1310 tcp option maxseg size set 1310")
    assert rules[3].startswith("oifname @mss_1310 meta protocol ip6") and "set 1290" in rules[3]
    assert nft.render(P, {}).splitlines() == lines[:2]


def test_a_large_set_is_written_over_several_lines():
    ports = {f"icv{i}": 1310 for i in range(2 * nft.ELEMENTS_PER_LINE + 1)}
    text = nft.render(P, ports)
    assert text.count('"icv') == len(ports) and text.count(",\n") == 2


@pytest.mark.parametrize(
    "bad", [{'ic"v': 1300}, {"icv 1": 1300}, {"a" * 16: 1300}, {"icv1": 80}, {"icv1": True}]
)
def test_render_refuses_bad_input(bad):
    with pytest.raises(DriverError, match="cannot clamp MSS"):
        nft.render(P, bad)


def test_table_names_need_a_plain_prefix():
    assert nft.table_name("ic") == "intercloud_ic"
    with pytest.raises(DriverError):
        nft.table_name("ic-1")


MAXSEG = {"tcp option": {"name": "maxseg", "field": "size"}}


FLAGS = {"&": [{"payload": {"protocol": "tcp", "field": "flags"}}, ["syn", "rst"]]}
SYN = {"match": {"op": "==", "left": FLAGS, "right": "syn"}}


def _rule(direction: str, ref: str, proto: str, mss: int, chain: str = "clamp") -> dict:
    """A rule as `nft -j list table` (nft 1.0.6) shows what render() wrote."""
    exprs = [
        {"match": {"op": "==", "left": {"meta": {"key": direction}}, "right": ref}},
        {"match": {"op": "==", "left": {"meta": {"key": "protocol"}}, "right": proto}},
        {"match": {"op": ">", "left": MAXSEG, "right": mss}},
        {"mangle": {"key": MAXSEG, "value": mss}},
    ]
    body = {"family": "bridge", "table": "intercloud_ic", "chain": chain, "handle": 2}
    return {"rule": {**body, "expr": exprs}}


def _former_rule(direction: str, ref: str, proto: str, mss: int) -> dict:
    """A rule of the layout before the SYN gate: the flags test inside, in the base chain."""
    rule = _rule(direction, ref, proto, mss, chain="mss")
    rule["rule"]["expr"].insert(2, SYN)
    return rule


GATE = {
    "rule": {
        "family": "bridge", "table": "intercloud_ic", "chain": "mss", "handle": 4,
        "expr": [SYN, {"jump": {"target": "clamp"}}],
    }
}  # fmt: skip
CLAMP = {"chain": {"family": "bridge", "table": "intercloud_ic", "name": "clamp", "handle": 2}}


def _set(mss: int, *ifnames: str) -> dict:
    body = {"family": "bridge", "name": f"mss_{mss}", "table": "intercloud_ic", "type": "ifname"}
    return {"set": {**body, "handle": 3, "elem": list(ifnames)}}


def _listing(*items: dict, chain: dict | None = None, gate: bool = True) -> dict:
    """A listing as nft shows it: sets, the base chain, the clamp chain, the gate, the rest."""
    base = {"family": "bridge", "table": "intercloud_ic", "name": "mss", "handle": 1}
    hook = {"type": "filter", "hook": "forward", "prio": -200, "policy": "accept"}
    return {
        "nftables": [
            {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
            {"table": {"family": "bridge", "name": "intercloud_ic", "handle": 1}},
            *[i for i in items if "set" in i],
            {"chain": chain if chain is not None else {**base, **hook}},
            *([CLAMP, GATE] if gate else []),
            *[i for i in items if "set" not in i],
        ]
    }


def _value(mss: int, *ifnames: str) -> list[dict]:
    """The set of ports clamped to `mss` and its four rules."""
    rules = [
        _rule(d, f"@mss_{mss}", p, m)
        for p, m in (("ip", mss), ("ip6", mss - 20))
        for d in ("iifname", "oifname")
    ]
    return [_set(mss, *ifnames), *rules]


def test_parse_reads_back_what_render_writes():
    assert nft.parse(_listing(*_value(1310, "icv100", "icv101"), *_value(1400, "icv2")), P) == {
        "icv100": 1310,
        "icv101": 1310,
        "icv2": 1400,
    }
    assert nft.parse(_listing(gate=False), P) == {}


def test_parse_flags_partial_and_foreign_content():
    partial = _value(1310, "icv100")[:4]
    assert nft.parse(_listing(*partial), P) == {"icv100": 0}
    wrong_v6 = _value(1310, "icv100")[:3] + _value(1300, "icv100")[3:]
    assert nft.parse(_listing(*wrong_v6), P)["icv100"] == 0
    twice = _value(1310, "icv100") + _value(1400, "icv100", "icv2")
    assert nft.parse(_listing(*twice), P) == {"icv100": 0, "icv2": 1400}
    other = {"rule": {"table": "intercloud_ic", "chain": "mss", "expr": [{"accept": None}]}}
    assert nft.parse(_listing(*_value(1300, "icv1"), other), P) == {"icv1": 1300, "*": 0}
    weird = {"rule": {"table": "intercloud_ic", "chain": "mss", "expr": [{"match": "x"}] * 5}}
    assert nft.parse(_listing(weird), P) == {"*": 0}
    chain = {"name": "mss", "type": "filter", "hook": "input", "prio": -200, "policy": "accept"}
    assert nft.parse(_listing(*_value(1300, "icv1"), chain=chain), P) == {"icv1": 1300, "*": 0}
    a_set = {"set": {"name": "s", "table": "intercloud_ic"}}
    assert nft.parse(_listing(a_set), P) == {"*": 0}
    flagged = {"set": {**_set(1300, "icv1")["set"], "flags": ["interval"]}}
    assert nft.parse(_listing(flagged, *_value(1300, "icv1")[1:]), P) == {"*": 0}
    former = _rule("iifname", "icv1", "ip", 1300)  # one rule per port: rewritten
    assert nft.parse(_listing(former), P) == {"*": 0}


def test_parse_wants_exactly_one_syn_gate_before_the_rules():
    assert nft.parse(_listing(*_value(1300, "icv1"), gate=False), P) == {"icv1": 1300, "*": 0}
    assert nft.parse(_listing(*_value(1300, "icv1"), GATE), P) == {"icv1": 1300, "*": 0}
    assert nft.parse(_listing(gate=False), P) == {}
    assert nft.parse(_listing(), P) == {"*": 0}  # a gate with nothing behind it: removed
    wrong_jump = {"rule": {**GATE["rule"], "expr": [SYN, {"jump": {"target": "other"}}]}}
    assert nft.parse(_listing(*_value(1300, "icv1"), wrong_jump, gate=False), P)["*"] == 0


def test_parse_rewrites_the_layout_before_the_gate():
    """Four rules per value in the base chain, each testing the flags itself (before 2026-12-06):
    reported foreign, so the first pass after an upgrade writes the gated table."""
    rules = [
        _former_rule(d, "@mss_1300", p, m)
        for p, m in (("ip", 1300), ("ip6", 1280))
        for d in ("iifname", "oifname")
    ]
    assert nft.parse(_listing(_set(1300, "icv1"), *rules, gate=False), P) == {"icv1": 0, "*": 0}


# -- tbf parameters -------------------------------------------------------------------------------


def test_tbf_params():
    assert tbf_params(50) == (6_250_000, 65_536, 65_536 + 312_500)
    rate, burst, limit = tbf_params(10_000)  # 10 Gbit/s: 4 ms of traffic
    assert (rate, burst, limit) == (1_250_000_000, 5_000_000, 5_000_000 + 62_500_000)
    assert tbf_params(0.001)[0] == 125
    with pytest.raises(DriverError, match="Mbit/s"):
        tbf_params(40_000)


def test_relay_filter_render_and_parse_round_trip():
    from intercloud.drivers.dataplane.linux import nft

    pairs = {("icv1", "icv2"), ("icv2", "icv1")}
    text = nft.render_relay("ic", pairs)
    assert '"icv1" . "icv2", "icv2" . "icv1"' in text and "intercloud_ic_relay" in text
    assert "\t\tiifname . oifname @pairs drop" in text.splitlines()  # one rule, however many
    assert nft.render_relay("ic", ()).count("table") == 2  # add + delete: no table left
    table = {"family": "bridge", "table": "intercloud_ic_relay"}
    a_set = {
        **table, "name": "pairs", "type": ["ifname", "ifname"], "handle": 2,
        "elem": [{"concat": ["icv2", "icv1"]}, {"concat": ["icv1", "icv2"]}],
    }  # fmt: skip
    match = {"concat": [{"meta": {"key": "iifname"}}, {"meta": {"key": "oifname"}}]}
    rule = {
        **table, "chain": "relay", "handle": 3,
        "expr": [{"match": {"op": "==", "left": match, "right": "@pairs"}}, {"drop": None}],
    }  # fmt: skip
    chain = {"name": "relay", "type": "filter", "hook": "forward", "prio": -200,
             "policy": "accept"}  # fmt: skip
    listing = {"nftables": [{"metainfo": {}}, {"set": a_set}, {"chain": chain}, {"rule": rule}]}
    assert nft.parse_relay(listing, "ic") == pairs
    accept = dict(rule, expr=rule["expr"][:1] + [{"accept": None}])
    listing["nftables"].append({"rule": accept})
    assert nft.FOREIGN_PAIR in nft.parse_relay(listing, "ic")  # not ours: rewritten


def test_relay_filter_of_the_former_layout_is_rewritten():
    """One rule per pair (before 2026-12-06): every frame walked every rule."""
    from intercloud.drivers.dataplane.linux import nft

    rule = {
        "family": "bridge", "table": "intercloud_ic_relay", "chain": "relay",
        "expr": [
            {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "icv1"}},
            {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "icv2"}},
            {"drop": None},
        ],
    }  # fmt: skip
    chain = {"name": "relay", "type": "filter", "hook": "forward", "prio": -200,
             "policy": "accept"}  # fmt: skip
    listing = {"nftables": [{"metainfo": {}}, {"chain": chain}, {"rule": rule}]}
    assert nft.parse_relay(listing, "ic") == {nft.FOREIGN_PAIR}
    elem = [{"concat": ["a", "b"]}]
    lone_set = {"set": {"table": "intercloud_ic_relay", "name": "pairs",
                        "type": ["ifname", "ifname"], "elem": elem}}  # fmt: skip
    assert nft.FOREIGN_PAIR in nft.parse_relay({"nftables": [lone_set]}, "ic")  # no rule


def test_plan_sets_the_relay_filter_only_when_it_differs():
    from intercloud.domain.hoststate import HostState, Observed
    from intercloud.domain.plan import plan

    want = HostState(no_forward={("icv1", "icv2"), ("icv2", "icv1")})
    steps = plan(want, Observed(HostState()))
    assert [s.verb for s in steps] == ["ensure_no_forward"]
    assert steps[0].obj == frozenset(want.no_forward)
    assert plan(want, Observed(HostState(no_forward=set(want.no_forward)))) == []


def test_a_tunnel_port_set_down_is_ensured_in_place_not_made_again():
    """A gateway that stood down left its tunnel ports down: once active, the plan ensures
    them (which brings them up) and removes nothing; a broken one (drift) is made again."""
    want = desired()
    seen = Observed(desired(), down=frozenset({"icv200"}))
    assert plan(want, seen) == [Step("ensure_vxlan", VX2)]
    broken = Observed(desired(), drift=frozenset({"icv200"}))
    assert [s.verb for s in plan(want, broken)] == ["remove_link", "ensure_vxlan"]
