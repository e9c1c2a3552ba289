"""`intercloud diagnose` on the lab: each layer broken in turn (for real: a wrong PSK, the WAN
dropping IKE/NAT-T, the peer's agent stopped or run with its clock shifted, VXLAN dropped before
encryption, the WAN's MTU lowered) and the real CLI, run in A's gateway against A's agent, must
name that layer; with nothing broken no layer is."""

from __future__ import annotations

import glob
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.integration.test_encryption import psk_of
from tests.integration.test_expansion import expand, shrink
from tests.waiting import wait_for

BROKEN_EXIT = 3
# Debian's libfaketime (the `faketime` package): preloaded into one agent, it shifts that
# process's clock only. Through `env`, not the `faketime` wrapper: the wrapper forks, and the
# lab's SIGTERM would stop it but not the agent under it.
LIBFAKETIME = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
SKEW = 600  # seconds: past the 300 s signature window


def faketime(seconds: int) -> list[str]:
    assert LIBFAKETIME, "libfaketime missing: apt-get install faketime (make install does)"
    return [
        f"LD_PRELOAD={LIBFAKETIME[0]}",
        f"FAKETIME=+{seconds}s",
        "FAKETIME_DONT_FAKE_MONOTONIC=1",  # timers and timeouts keep their pace
    ]


def diagnose(lab, *args: str) -> subprocess.CompletedProcess[str]:
    return lab.exec("A", [sys.executable, "-m", "intercloud", "diagnose", *args], timeout=120)


def walk(lab, peer: str = "B") -> dict:
    r = diagnose(lab, peer, "--json")
    assert r.returncode in (0, BROKEN_EXIT), (r.returncode, r.stderr)
    out = json.loads(r.stdout)
    assert (r.returncode == BROKEN_EXIT) == bool(out["broken"]), (r.returncode, out)
    return out


def states(out: dict) -> dict[str, str]:
    return {lay["layer"]: lay["state"] for lay in out["layers"]}


def named(lab, layer: str, timeout: float = 90) -> dict:
    """The walk once it names `layer` (the world takes a moment to show a breakage)."""
    return wait_for(
        lambda: (out := walk(lab))["broken"] == layer and out,
        timeout=timeout,
        interval=1.0,
        what=f"diagnose to name the {layer} layer",
    )


def healthy(lab, timeout: float = 120) -> dict:
    return wait_for(
        lambda: (out := walk(lab))["broken"] is None and out,
        timeout=timeout,
        interval=1.0,
        what="diagnose to find every layer fine",
    )


@pytest.fixture(scope="module")
def expanded(lab3):
    """net1 of p1 expanded A -> B: the link has a tunnel port to look at."""
    exp = expand(lab3, "A", "p1", "net1", ["B"])
    yield exp
    shrink(lab3, "A", "p1", exp["id"])


@contextmanager
def nft(lab, target: str, ruleset: str, table: str) -> Iterator[None]:
    ns = lab.namespace(target)
    subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "-f", "-"], input=ruleset, text=True, check=True
    )
    try:
        yield
    finally:
        subprocess.run(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", table])


def print_line(lab, layer: str) -> None:
    """What the table output says for the broken layer (the report quotes it)."""
    r = diagnose(lab, "B")
    assert r.returncode == BROKEN_EXIT, (r.returncode, r.stdout, r.stderr)
    last = [ln for ln in r.stdout.splitlines() if ln.startswith(f"{layer}: ")]
    assert last, r.stdout
    print(f"\n{layer} broken -> {last[-1]}\n{r.stdout}")


def test_nothing_broken_every_layer_fine(lab3, expanded):
    out = healthy(lab3)
    got = states(out)
    assert [lay["layer"] for lay in out["layers"]] == [
        "underlay",
        "ipsec",
        "api",
        "clock",
        "fdb",
        "tunnel",
        "mtu",
    ]
    assert set(got.values()) == {"ok"}, out  # the tunnel probes and the MTU one too
    r = diagnose(lab3, "B")
    assert r.returncode == 0 and "every layer fine" in r.stdout, (r.stdout, r.stderr)
    print(f"\n{r.stdout}")
    every = json.loads(diagnose(lab3, "--json").stdout)
    assert sorted(w["peer"] for w in every["links"]) == ["B", "C"]
    assert [w["broken"] for w in every["links"]] == [None, None], every  # C: behind NAT


def test_unknown_peer_is_one_line_and_an_error(lab3):
    r = diagnose(lab3, "Z")
    assert r.returncode == 1
    assert r.stderr.strip().startswith("error:") and "'Z'" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_wrong_psk_is_the_ipsec_layer(lab3, expanded):
    right = psk_of(lab3, "A", "B")
    lab3.api("A", "PATCH", "/v1/links/B", {"psk": "definitely-not-the-right-key"})
    try:
        out = named(lab3, "ipsec")
        ipsec = next(lay for lay in out["layers"] if lay["layer"] == "ipsec")
        assert "authentication failed" in ipsec["detail"], ipsec
        assert "pre-shared keys differ" in out["advice"], out
        assert states(out)["underlay"] == "ok"
        print_line(lab3, "ipsec")
    finally:
        lab3.api("A", "PATCH", "/v1/links/B", {"psk": right})
    healthy(lab3)


def test_ike_and_nat_t_blocked_on_the_wan_is_the_ipsec_layer(lab3, expanded):
    healthy(lab3)
    drop = """table inet diag_ike {
    chain forward {
        type filter hook forward priority -10; policy accept;
        udp dport { 500, 4500 } drop
        udp sport { 500, 4500 } drop
    }
}
"""
    with nft(lab3, "wan", drop, "diag_ike"):
        out = named(lab3, "ipsec")
        assert "UDP 4500" in out["advice"] or "UDP 500/4500" in out["advice"], out
        assert states(out)["underlay"] == "ok"
        print_line(lab3, "ipsec")
    healthy(lab3)


def test_peer_agent_stopped_is_the_api_layer(lab3, expanded):
    healthy(lab3)
    lab3.stop_agent("B")
    try:
        out = named(lab3, "api")
        assert "start the peer's agent" in out["advice"], out
        assert states(out)["ipsec"] == "ok"
        print_line(lab3, "api")
    finally:
        lab3.start_agent("B")
    healthy(lab3)


def test_peer_clock_past_the_window_is_the_clock_layer(lab3, expanded):
    healthy(lab3)
    normal = list(lab3.state().agent_command)
    lab3.stop_agent("B")
    try:
        with lab3._edit() as st:  # B's agent runs with its clock SKEW seconds ahead
            st.agent_command = ["env", *faketime(SKEW), *normal]
        lab3.start_agent("B")
        out = named(lab3, "clock")
        clock = next(lay for lay in out["layers"] if lay["layer"] == "clock")
        assert "ahead of ours" in clock["detail"], clock
        seconds = float(clock["detail"].split("clock is ")[1].split(" s ")[0])
        assert SKEW - 30 < seconds < SKEW + 30, clock
        assert "synchronise" in out["advice"], out
        print_line(lab3, "clock")
    finally:
        lab3.stop_agent("B")
        with lab3._edit() as st:
            st.agent_command = normal
        lab3.start_agent("B")
    healthy(lab3)


def test_vxlan_dropped_before_encryption_is_the_tunnel_layer(lab3, expanded):
    healthy(lab3)
    drop = """table inet diag_vxlan {
    chain output {
        type filter hook output priority 0; policy accept;
        udp dport 4789 drop
    }
}
"""
    with nft(lab3, "A", drop, "diag_vxlan"):
        out = named(lab3, "tunnel")
        assert {states(out)[k] for k in ("underlay", "ipsec", "api", "clock", "fdb")} == {"ok"}
        assert "UDP 4789" in out["advice"], out
        print_line(lab3, "tunnel")
    healthy(lab3)


def test_mtu_lowered_on_the_wan_is_the_mtu_layer(lab3, expanded):
    healthy(lab3)
    got = states(walk(lab3))
    assert got["tunnel"] == got["mtu"] == "ok", got  # the probes run: the MTU is checked
    wan = lab3.namespace("wan")
    ifaces = [lab3.cloud(c).wan_if for c in ("A", "B")]

    def set_mtu(mtu: int) -> None:
        for iface in ifaces:  # a veth drops what exceeds its MTU, silently: a black hole
            subprocess.run(["ip", "-n", wan, "link", "set", iface, "mtu", str(mtu)], check=True)

    set_mtu(1280)
    try:
        out = named(lab3, "mtu")
        mtu = next(lay for lay in out["layers"] if lay["layer"] == "mtu")
        assert "64-byte probe crosses" in mtu["detail"] and "does not" in mtu["detail"], mtu
        assert "--mtu" in out["advice"], out
        print_line(lab3, "mtu")
    finally:
        set_mtu(1500)
    healthy(lab3)
