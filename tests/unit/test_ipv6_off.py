"""IPv6 off on tunnel ports (drivers/dataplane/linux/ipv6.py): which keys are written, and
that no name that is not an interface's reaches a path or a sysctl argument."""

import pytest

from intercloud.drivers.dataplane.linux import ipv6
from intercloud.errors import DriverError


def test_the_key_uses_the_slash_form_so_a_dot_stays_in_the_name():
    assert ipv6._key("icv1.5") == "net/ipv6/conf/icv1.5/disable_ipv6"


@pytest.mark.parametrize("bad", ["..", ".", "a/b", "icv1 x", "", "x" * 16, "icv\n1", None])
def test_a_name_that_is_not_an_interface_is_refused_before_anything_is_written(bad, monkeypatch):
    written: list[object] = []
    monkeypatch.setattr(ipv6.subprocess, "run", lambda *a, **k: written.append(a))
    with pytest.raises(DriverError):
        ipv6.disable(["icv1", bad], "ns-x")
    assert written == []


def test_in_a_namespace_one_sysctl_run_per_chunk(monkeypatch):
    runs: list[list[str]] = []
    monkeypatch.setattr(ipv6.subprocess, "run", lambda argv, **k: runs.append(argv))
    ipv6.disable([f"icv{i}" for i in range(ipv6.CHUNK + 1)], "ns-x")
    assert len(runs) == 2
    assert runs[0][:8] == ["ip", "netns", "exec", "ns-x", "sysctl", "-q", "-e", "-w"]
    assert runs[1][8:] == [f"net/ipv6/conf/icv{ipv6.CHUNK}/disable_ipv6=1"]
