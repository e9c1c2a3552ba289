"""The in-memory data plane, and the reconciler's diff (domain.plan) driven against it."""

from __future__ import annotations

import dataclasses

import pytest

from intercloud.config import Config, DataplaneSection
from intercloud.domain.hoststate import Attachment, Bridge, HostState, Patch, Vxlan
from intercloud.domain.plan import Step, plan
from intercloud.drivers.dataplane import load
from intercloud.drivers.dataplane.fake import FakeDataplane, FakeLink
from intercloud.errors import DriverError

P = "ic"


def apply(dp: FakeDataplane, steps: list[Step]) -> None:
    for step in steps:
        getattr(dp, step.verb)(step.obj)


def converge(dp: FakeDataplane, desired: HostState, foreign=("eth1",)) -> list[Step]:
    steps = plan(desired, dp.observe(foreign))
    apply(dp, steps)
    return steps


def state(*objs) -> HostState:
    s = HostState()
    for obj in objs:
        s.add(obj)
    return s


VX100 = Vxlan("icv100", 100, "198.18.0.1", "198.18.0.2", "icbe1", isolated=True)
VX101 = Vxlan("icv101", 101, "198.18.0.1", "198.18.0.3", "icbe2", port=4790, mtu=1400)
PATCH = Patch("icpe1", "icqe1", "icbe1", "opbr")
ATT = Attachment("eth1", "icbe2")


def desired() -> HostState:
    return state(Bridge("icbe1"), Bridge("icbe2", 1400), VX100, VX101, PATCH, ATT)


@pytest.fixture
def dp() -> FakeDataplane:
    fake = FakeDataplane()
    fake.add_foreign("opbr", "bridge")
    fake.add_foreign("eth1")
    return fake


# -- the reconciler's diff against the fake ---------------------------------------------------


def test_plan_converges_from_empty_and_second_pass_makes_no_call(dp):
    steps = converge(dp, desired())
    assert [s.verb for s in steps] == ["ensure_bridge"] * 2 + ["ensure_vxlan"] * 2 + [
        "ensure_patch",
        "attach",
    ]
    assert dp.observe(["eth1"]).state == desired()
    dp.reset_calls()
    assert converge(dp, desired()) == []
    assert dp.calls == []


def test_every_ensure_twice_changes_nothing(dp):
    converge(dp, desired())
    before = dataclasses.replace(dp.links["icv100"])
    for obj in (Bridge("icbe1"), Bridge("icbe2", 1400), VX100, VX101, PATCH):
        getattr(dp, "ensure_" + type(obj).__name__.lower())(obj)
    dp.attach(ATT)
    assert dp.observe(["eth1"]).state == desired()
    assert dp.links["icv100"] == before


def test_changed_remote_replaces_the_vxlan(dp):
    converge(dp, desired())
    want = desired()
    want.add(dataclasses.replace(VX100, remote="198.18.0.9"))
    steps = converge(dp, want)
    assert [s.describe() for s in steps] == ["remove_link icv100", "ensure_vxlan icv100"]
    assert dp.observe(["eth1"]).state == want
    assert plan(want, dp.observe(["eth1"])) == []


def test_bridge_mtu_changes_in_place_and_keeps_ports(dp):
    converge(dp, desired())
    want = desired()
    want.add(Bridge("icbe2", 9000))
    assert [s.describe() for s in converge(dp, want)] == ["ensure_bridge icbe2"]
    assert dp.links["icv101"].master == "icbe2"
    assert dp.links["eth1"].master == "icbe2"
    assert plan(want, dp.observe(["eth1"])) == []


def test_mtu_none_is_reported_as_none_after_an_explicit_mtu(dp):
    dp.ensure_bridge(Bridge("icbe1", 9000))
    assert dp.observe().state.bridges["icbe1"] == Bridge("icbe1", 9000)
    dp.ensure_bridge(Bridge("icbe1"))
    assert dp.observe().state.bridges["icbe1"] == Bridge("icbe1")


def test_moving_an_attachment_detaches_then_attaches(dp):
    converge(dp, desired())
    want = desired()
    want.add(Attachment("eth1", "icbe1"))
    steps = converge(dp, want)
    assert [s.describe() for s in steps] == ["detach eth1", "attach eth1->icbe1"]
    assert dp.observe(["eth1"]).state.attachments == {"eth1": Attachment("eth1", "icbe1")}


def test_empty_desired_removes_everything_but_foreign(dp):
    converge(dp, desired())
    converge(dp, HostState())
    assert dp.observe(["eth1"]).state == HostState()
    assert set(dp.links) == {"opbr", "eth1"}
    assert dp.links["eth1"].master is None


def test_cleanup_removes_ours_and_frees_foreign(dp):
    converge(dp, desired())
    dp.cleanup()
    assert set(dp.links) == {"opbr", "eth1"}
    assert dp.links["eth1"].master is None


def test_failed_step_leaves_a_plan_that_retries(dp):
    dp.fail("ensure_patch", "kernel said no")
    with pytest.raises(DriverError, match="kernel said no"):
        converge(dp, desired())
    assert [s.describe() for s in plan(desired(), dp.observe(["eth1"]))] == [
        "ensure_patch icpe1",
        "attach eth1->icbe2",
    ]
    converge(dp, desired())
    assert plan(desired(), dp.observe(["eth1"])) == []


# -- the fake's own behaviour -----------------------------------------------------------------


def test_vxlan_needs_an_existing_bridge(dp):
    with pytest.raises(DriverError, match="icv100 to bridge icbe1: no such interface"):
        dp.ensure_vxlan(VX100)
    dp.add_foreign("icbe1", "other")
    with pytest.raises(DriverError, match="it is a other"):
        dp.ensure_vxlan(VX100)


def test_two_vxlans_cannot_share_vni_and_port(dp):
    dp.ensure_bridge(Bridge("icbe1"))
    dp.ensure_vxlan(VX100)
    with pytest.raises(DriverError, match="cannot create vxlan icv9: File exists"):
        dp.ensure_vxlan(dataclasses.replace(VX100, name="icv9", remote="198.18.0.7"))
    dp.ensure_vxlan(dataclasses.replace(VX100, name="icv9", port=4790))
    assert set(dp.observe().state.vxlans) == {"icv100", "icv9"}


def test_patch_needs_the_operator_bridge(dp):
    dp.ensure_bridge(Bridge("icbe1"))
    with pytest.raises(DriverError, match="into nobr: no such interface"):
        dp.ensure_patch(dataclasses.replace(PATCH, peer_master="nobr"))
    with pytest.raises(DriverError, match="cannot enslave icqe1 to eth1"):
        dp.ensure_patch(dataclasses.replace(PATCH, peer_master="eth1"))


def test_patch_replaces_a_stale_end(dp):
    dp.ensure_bridge(Bridge("icbe1"))
    dp.links["icqe1"] = FakeLink("icqe1", "other")
    dp.ensure_patch(PATCH)
    assert dp.links["icqe1"].kind == "veth"
    assert dp.observe().state.patches == {"icpe1": PATCH}


def test_removing_either_end_of_a_patch_removes_both(dp):
    dp.ensure_bridge(Bridge("icbe1"))
    dp.ensure_patch(PATCH)
    dp.remove_link("icqe1")
    assert "icpe1" not in dp.links and "icqe1" not in dp.links


def test_attach_refuses_missing_interfaces_and_bridges(dp):
    dp.ensure_bridge(Bridge("icbe1"))
    with pytest.raises(DriverError, match="cannot attach eth9 to icbe1: no such interface"):
        dp.attach(Attachment("eth9", "icbe1"))
    with pytest.raises(DriverError, match="Too many levels"):
        dp.attach(Attachment("opbr", "icbe1"))
    with pytest.raises(DriverError, match="bridge icbe7"):
        dp.attach(Attachment("eth1", "icbe7"))


def test_absent_things_are_not_errors(dp):
    dp.detach("nothing")
    dp.detach("eth1")
    dp.remove_link("nothing")
    assert dp.calls == ["detach nothing", "detach eth1", "remove_link nothing"]


def test_observe_reports_only_our_kinds_and_our_bridges_attachments(dp):
    dp.add_foreign("icv7", "other")  # our naming, wrong kind: not a tunnel
    dp.add_foreign("xxbe1", "bridge")  # another prefix
    dp.add_foreign("tap0", "other", master="opbr")  # held by the operator's bridge
    dp.ensure_bridge(Bridge("icbe1"))
    dp.add_foreign("tap1", "other", master="icbe1")
    seen = dp.observe(["tap0", "tap1", "gone"]).state
    assert seen == state(Bridge("icbe1"), Attachment("tap1", "icbe1"))


def test_interface_kind_and_reads_are_not_calls(dp):
    dp.ensure_bridge(Bridge("icbe1"))
    dp.reset_calls()
    assert dp.interface_kind("icbe1") == "bridge"
    assert dp.interface_kind("eth1") == "other"
    assert dp.interface_kind("nope") is None
    dp.observe()
    assert dp.calls == [] and dp.observations == 1


def test_add_foreign_checks_its_arguments(dp):
    with pytest.raises(ValueError):
        dp.add_foreign("x", "tap")
    with pytest.raises(ValueError):
        dp.add_foreign("eth1")


def test_load_builds_the_fake():
    fake = load(Config(dataplane=DataplaneSection(driver="fake")))
    assert isinstance(fake, FakeDataplane)
    fake.close()
    assert fake.closed
