"""The Linux data plane's batch lines (ipbatch.py): what each fresh device becomes, in phases."""

import subprocess

import pytest

from intercloud.domain.hoststate import Attachment, Bridge, Patch, Vxlan
from intercloud.domain.plan import Step
from intercloud.drivers.dataplane.linux import bulk, ipbatch
from intercloud.errors import DriverError


def test_every_device_is_made_then_configured_then_up():
    lines = ipbatch.in_phases(
        ipbatch.bridge(Bridge("icb1", 1400), "intercloud:mtu=1400")
        + ipbatch.patch(Patch("icp1", "icq1", "icb1", "tn1"))
        + ipbatch.vxlan(
            Vxlan("icv1", 7, "198.18.1.2", "198.18.2.2", "icb1", isolated=True), None, True
        )
        + ipbatch.attach(Attachment("eth1", "icb1"))
    )
    assert lines == [
        "link add name icb1 mtu 1400 up type bridge stp_state 0 forward_delay 0",
        "link add name icp1 master icb1 type veth peer name icq1",
        "link add name icv1 master icb1 type vxlan id 7 local 198.18.1.2 remote 198.18.2.2"
        " dstport 4789 learning df unset",
        "link set icb1 alias intercloud:mtu=1400",
        "link set icq1 master tn1",
        "link set icv1 type bridge_slave isolated on",
        "link set eth1 master icb1",
        "link set icp1 up",
        "link set icq1 up",
        "link set icv1 up",
        "link set eth1 up",
    ]


def test_a_rate_limited_tunnel_is_left_down_for_its_qdisc():
    vx = Vxlan("icv2", 8, "198.18.1.2", "198.18.2.2", "icb2", mtu=1400, rate_mbit=10)
    lines = [text for _, text in ipbatch.vxlan(vx, "intercloud:mtu=1400", df=False)]
    assert lines == [
        "link add name icv2 mtu 1400 master icb2 type vxlan id 8 local 198.18.1.2"
        " remote 198.18.2.2 dstport 4789 learning",
        "link set icv2 alias intercloud:mtu=1400",
    ]


def test_only_plain_names_go_on_a_command_line():
    assert ipbatch.plain("icbe1", "tn-0.1", "brq1234abcd-56")
    assert not ipbatch.plain("icbe1", "a b")
    assert not ipbatch.plain('x"y')
    assert not ipbatch.plain("a" * 16)


def test_split_up_runs_every_up_after_everything_else():
    lines = ipbatch.vxlan(Vxlan("icv1", 7, "198.18.1.2", "198.18.2.2", "icb1"), None, False)
    lines += ipbatch.patch(Patch("icp1", "icq1", "icb1", "tn1"))
    made, up = ipbatch.split_up(lines)
    assert made == [
        "link add name icv1 master icb1 type vxlan id 7 local 198.18.1.2 remote 198.18.2.2"
        " dstport 4789 learning",
        "link add name icp1 master icb1 type veth peer name icq1",
        "link set icq1 master tn1",
    ]
    assert up == ["link set icv1 up", "link set icp1 up", "link set icq1 up"]


def test_devices_deleted_together_go_through_one_group():
    assert ipbatch.delete_together(["icv1", "icp2"], 2**24 + 5) == [
        f"link set icv1 group {2**24 + 5}",
        f"link set icp2 group {2**24 + 5}",
        f"link del group {2**24 + 5}",
    ]


@pytest.mark.parametrize("names,group", [(["icv1 up"], 2**24), (["icv1"], 0), (["icv1"], 2**31)])
def test_a_bad_name_or_group_never_reaches_a_deletion_line(names, group):
    with pytest.raises(DriverError):
        ipbatch.delete_together(names, group)


@pytest.mark.parametrize(
    ("code", "stderr", "said"),
    [
        (0, "", ""),
        (1, "RTNETLINK answers: File exists\nCommand failed -:3\n", "File exists"),
        (1, "", "exited with 1"),  # a failure ip did not explain still counts as one
    ],
)
def test_run_says_nothing_only_when_ip_did_every_line(monkeypatch, code, stderr, said):
    """The driver takes an empty answer as "every line done" and checks nothing after it."""

    def batch(tool, lines, netns, timeout):
        return subprocess.CompletedProcess([tool], code, "", stderr)

    monkeypatch.setattr(ipbatch, "_batch", batch)
    answer = ipbatch.run(["link add name icb1 type bridge"], None)
    assert (answer == "") == (said == "") and said in answer


def test_a_missing_ip_is_a_failure(monkeypatch):
    def batch(tool, lines, netns, timeout):
        raise FileNotFoundError(2, "No such file or directory", "ip")

    monkeypatch.setattr(ipbatch, "_batch", batch)
    assert ipbatch.run(["link add name icb1 type bridge"], None)


def test_a_batched_step_is_whole_but_for_a_rate_limited_tunnel():
    """What the driver may take as done once ip did every line, and what it asks again."""
    free = Vxlan("icv1", 1, "198.18.0.1", "198.18.0.2", "icb1")
    limited = Vxlan("icv2", 2, "198.18.0.1", "198.18.0.2", "icb1", rate_mbit=10.0)
    patch = Patch("icp1", "icq1", "icb1", "opbr")
    steps = {
        "bridge": Step("ensure_bridge", Bridge("icb1")),
        "free": Step("ensure_vxlan", free),
        "limited": Step("ensure_vxlan", limited),
        "patch": Step("ensure_patch", patch),
        "attach": Step("attach", Attachment("opv0", "icb1")),
    }
    assert {k: bulk.whole(s) for k, s in steps.items()} == {
        "bridge": True,
        "free": True,
        "limited": False,
        "patch": True,
        "attach": True,
    }
    assert {k: bulk.touched(s) for k, s in steps.items()} == {
        "bridge": ("icb1",),
        "free": ("icv1",),
        "limited": ("icv2",),
        "patch": ("icp1", "icq1"),
        "attach": ("opv0",),
    }
