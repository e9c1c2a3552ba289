"""The strongSwan driver without charon: spec -> VICI messages, strongswan.conf, status
parsing and error capture against a fake VICI session, and the in-memory FakeIpsec."""

from __future__ import annotations

from dataclasses import replace

import pytest
from vici.exception import CommandException

from intercloud.drivers.ipsec.base import ConnectionSpec
from intercloud.drivers.ipsec.fake import FakeIpsec
from intercloud.drivers.ipsec.strongswan import (
    StrongswanIpsec,
    child_lifetimes,
    classify,
    conn_dict,
    conn_view,
)
from intercloud.errors import DriverError
from intercloud.lab.charon import FWMARK, conf_text

SPEC = ConnectionSpec("link-B", "198.18.0.1", "198.18.0.2", "cloud-a", "cloud-b", "s3cret-psk")


def b(x):
    """Encode like VICI answers: values bytes, keys str."""
    if isinstance(x, dict):
        return {k: b(v) for k, v in x.items()}
    if isinstance(x, list):
        return [b(v) for v in x]
    return str(x).encode()


def listed(message: dict) -> dict:
    """What 5.9.8's list-conns answers for a loaded load-conn message (as observed)."""
    ((name, c),) = message.items()
    children = {
        n: {"mode": ch["mode"].upper(), "rekey_time": ch["rekey_time"][:-1],
            "local-ts": ch["local_ts"], "remote-ts": ch["remote_ts"]}
        for n, ch in c["children"].items()
    }  # fmt: skip
    return b({name: {
        "local_addrs": c["local_addrs"], "remote_addrs": c["remote_addrs"],
        "version": f"IKEv{c['version']}", "rekey_time": c["rekey_time"][:-1],
        "dpd_delay": c["dpd_delay"][:-1], "unique": "UNIQUE_" + c.get("unique", "no").upper(),
        "local-1": {"id": c["local"]["id"], "class": "pre-shared key"},
        "remote-1": {"id": c["remote"]["id"], "class": "pre-shared key"},
        "children": children,
    }})  # fmt: skip


class FakeVici:
    """Enough of vici.Session for the driver; SAs come up when initiated."""

    def __init__(self, plugins=("charon", "kernel-libipsec", "vici")):
        self.plugins, self.conns, self.shared, self.sas = list(plugins), {}, {}, {}
        self.log: list[tuple[str, object]] = []

    def stats(self):
        return {"plugins": b(self.plugins)}

    def list_conns(self, filters=None):
        return iter(listed({n: c}) for n, c in self.conns.items())

    def list_sas(self, filters=None):
        return iter({n: sa} for n, sa in self.sas.items())

    def get_shared(self):
        return {"keys": b(list(self.shared))}

    def load_conn(self, msg):
        self.log.append(("load-conn", msg))
        self.conns.update(msg)

    def load_shared(self, msg):
        self.log.append(("load-shared", msg["id"]))
        self.shared[msg["id"]] = msg

    def unload_conn(self, msg):
        self.log.append(("unload-conn", msg["name"]))
        self.conns.pop(msg["name"])

    def unload_shared(self, msg):
        self.log.append(("unload-shared", msg["id"]))
        self.shared.pop(msg["id"])

    def initiate(self, msg):
        self.log.append(("initiate", msg))
        name, c = msg["ike"], self.conns[msg["ike"]]
        child = c["children"][name]
        self.sas[name] = b({
            "state": "ESTABLISHED", "remote-host": c["remote_addrs"][0], "nat-remote": "yes",
            "child-sas": {f"{name}-2": {
                "name": name, "uniqueid": 2, "state": "INSTALLED", "mode": "TUNNEL",
                "encap": "yes", "bytes-in": 84, "bytes-out": 168, "packets-in": 1,
                "packets-out": 2, "spi-in": "c1", "spi-out": "c2",
                "local-ts": child["local_ts"], "remote-ts": child["remote_ts"]}},
        })  # fmt: skip
        return iter(())

    def terminate(self, msg):
        self.log.append(("terminate", msg["ike"]))
        if self.sas.pop(msg["ike"], None) is None:
            raise CommandException("Command failed: no matching SAs to terminate found")
        return iter(())

    def verbs(self):
        return [v for v, _ in self.log]


@pytest.fixture
def vici_fake():
    return FakeVici()


@pytest.fixture
def driver(vici_fake):
    d = StrongswanIpsec("/nonexistent", session_factory=lambda: vici_fake, events=False)
    yield d
    d.close()


def test_conn_dict_libipsec_is_tunnel_host_to_host():
    ((name, conn),) = conn_dict(SPEC, "kernel-libipsec").items()
    assert name == "link-B"
    assert conn["version"] == "2" and conn["encap"] == "yes" and conn["mobike"] == "no"
    assert conn["local_addrs"] == ["198.18.0.1"] and conn["remote_addrs"] == ["198.18.0.2"]
    assert conn["proposals"] == ["aes256gcm16-prfsha256-ecp256"]
    assert conn["rekey_time"] == "14400s" and conn["dpd_delay"] == "10s"
    assert conn["local"] == {"auth": "psk", "id": "cloud-a"}
    assert conn["remote"] == {"auth": "psk", "id": "cloud-b"}
    child = conn["children"]["link-B"]
    assert child["mode"] == "tunnel"  # libipsec has no transport mode
    assert child["local_ts"] == ["198.18.0.1/32"] and child["remote_ts"] == ["198.18.0.2/32"]
    assert child["esp_proposals"] == ["aes256gcm16-ecp256"]
    assert (child["rekey_time"], child["life_time"], child["rand_time"]) == (
        "3600s", "3960s", "120s",
    )  # fmt: skip
    assert child["start_action"] == "trap"
    assert (child["dpd_action"], child["close_action"]) == ("restart", "start")
    assert "s3cret-psk" not in repr(conn)
    responder = conn_dict(replace(SPEC, initiator=False), "kernel-libipsec")["link-B"]
    assert responder["children"]["link-B"]["dpd_action"] == "clear"
    assert responder["children"]["link-B"]["close_action"] == "none"
    assert responder["children"]["link-B"]["rekey_time"] == "3840s"  # after the initiator


def test_conn_dict_kernel_backend_modes():
    child = conn_dict(SPEC, "kernel")["link-B"]["children"]["link-B"]
    assert child["mode"] == "transport"
    assert conn_dict(SPEC, "kernel")["link-B"]["encap"] == "no"
    tunnel = conn_dict(replace(SPEC, mode="tunnel"), "kernel")["link-B"]["children"]["link-B"]
    assert tunnel["mode"] == "tunnel"
    nat = replace(SPEC, remote="198.18.3.2", remote_ts="198.19.3.2")
    child = conn_dict(nat, "kernel")["link-B"]["children"]["link-B"]
    assert child["mode"] == "tunnel" and child["remote_ts"] == ["198.19.3.2/32"]
    assert conn_dict(nat, "kernel")["link-B"]["remote_addrs"] == ["198.18.3.2"]


def test_child_lifetimes_rekey_before_expiry_initiator_first():
    for lifetime in (5, 60, 3600, 86400):
        i_rekey, i_life, i_rand = child_lifetimes(lifetime, initiator=True)
        r_rekey, r_life, r_rand = child_lifetimes(lifetime, initiator=False)
        assert i_rekey == lifetime and i_life == r_life > r_rekey > i_rekey
        assert 0 <= i_rand < lifetime and i_rand == r_rand
        # windows [rekey - rand, rekey] are disjoint: no rekey collision
        assert i_rekey < r_rekey - r_rand
    assert child_lifetimes(5) == (5, 11, 1)
    assert child_lifetimes(5, initiator=False) == (9, 11, 1)


def test_conn_view_matches_list_conns_answer():
    msg = conn_dict(SPEC, "kernel-libipsec")
    assert conn_view(msg["link-B"]) == conn_view(listed(msg)["link-B"])
    other = conn_dict(replace(SPEC, esp_lifetime=60), "kernel-libipsec")
    assert conn_view(other["link-B"]) != conn_view(listed(msg)["link-B"])


@pytest.mark.parametrize(
    "spec",
    [
        replace(SPEC, name="bad name"),
        replace(SPEC, mode="beet"),
        replace(SPEC, psk=""),
        replace(SPEC, remote="%any"),  # needs remote_ts
        replace(SPEC, local_ts="not-an-address"),
        # what a hostile peer's answer could have made of its tunnel endpoint (issue 13)
        replace(SPEC, remote_ts="0.0.0.0/0"),
        replace(SPEC, remote_ts="198.19.0.0/16"),
        replace(SPEC, remote_ts="fe80::1%eth0"),
        replace(SPEC, remote="198.18.0.9\nnetns add pwn"),
        replace(SPEC, local="198.18.0.0/24"),
    ],
)
def test_invalid_specs_are_driver_errors(driver, spec):
    with pytest.raises(DriverError):
        driver.ensure_connection(spec)


def test_any_remote_with_remote_ts_is_accepted(driver, vici_fake):
    assert driver.ensure_connection(replace(SPEC, remote="%any", remote_ts="198.19.3.2/32"))


def test_classify_log_lines():
    assert classify("received AUTHENTICATION_FAILED notify error").startswith(
        "authentication failed"
    )
    msg = "tried 1 shared key for 'cloud-b' - 'cloud-a', but MAC mismatched"
    assert classify(msg).startswith("authentication failed") and msg in classify(msg)
    assert classify("received NO_PROPOSAL_CHOSEN notify error").startswith("no acceptable")
    assert classify("IKE_SA link-B[1] established between") is None


def test_conf_text_libipsec_and_fwmark():
    text = conf_text("unix:///w/charon.vici", "/w/charon.log")
    load = next(line for line in text.splitlines() if line.strip().startswith("load ="))
    for plugin in ("kernel-libipsec", "kernel-netlink", "socket-default", "vici", "openssl"):
        assert plugin in load.split()
    assert "socket = unix:///w/charon.vici" in text and "path = /w/charon.log" in text
    # the policy rule skips every lane's socket mark (FWMARK + k), not only its own
    assert f"fwmark = 0x{FWMARK:x}" in text and "fwmark = !0x1c0/0xfff0" in text
    assert "port_nat_t" not in text and "routing_table" not in text  # lane 0: charon's defaults
    assert "allow_peer_ts = yes" in text and "include" not in text
    assert text.count("{") == text.count("}")
    kernel = conf_text("unix:///w/charon.vici", "/w/charon.log", libipsec=False)
    assert "kernel-libipsec" not in kernel and "kernel-netlink" in kernel


def test_ensure_loads_initiates_and_is_idempotent(driver, vici_fake):
    assert driver.backend() == "kernel-libipsec"
    assert driver.ensure_connection(SPEC) is True
    assert vici_fake.verbs() == ["load-conn", "load-shared", "initiate"]
    assert vici_fake.shared["link-B"]["owners"] == ["cloud-a", "cloud-b"]
    assert vici_fake.log[-1][1] == {
        "child": "link-B", "ike": "link-B", "timeout": "-1", "init-limits": "no",
    }  # fmt: skip
    assert driver.ensure_connection(SPEC) is False
    assert vici_fake.verbs() == ["load-conn", "load-shared", "initiate"]
    st = driver.connections()["link-B"]
    assert st.up and st.ike_state == "ESTABLISHED" and not st.nat_detected  # nat-remote: fake
    (child,) = st.children
    assert (child.mode, child.encap, child.bytes_out, child.packets_out) == ("TUNNEL", True, 168, 2)
    assert (child.unique_id, child.spi_in, child.spi_out) == (2, "c1", "c2")


def test_responder_does_not_initiate(driver, vici_fake):
    assert driver.ensure_connection(replace(SPEC, initiator=False)) is True
    assert "initiate" not in vici_fake.verbs()
    assert driver.connections()["link-B"].ike_state == "DOWN"


def test_changed_spec_replaces_and_restarts(driver, vici_fake):
    driver.ensure_connection(SPEC)
    vici_fake.log.clear()
    assert driver.ensure_connection(replace(SPEC, esp_proposals=("aes128gcm16-x25519",))) is True
    assert vici_fake.verbs() == ["load-conn", "terminate", "initiate"]
    vici_fake.log.clear()
    assert driver.ensure_connection(replace(SPEC, esp_proposals=("aes128gcm16-x25519",), psk="n"))
    # a new PSK takes effect at once: the IKE SA is re-authenticated with it
    assert vici_fake.verbs()[:2] == ["load-shared", "terminate"]


def test_responder_reloads_a_changed_spec_without_terminating(driver, vici_fake):
    responder = replace(SPEC, initiator=False)
    driver.ensure_connection(responder)
    vici_fake.log.clear()
    assert driver.ensure_connection(replace(responder, esp_lifetime=60)) is True
    assert vici_fake.verbs() == ["load-conn"]  # the initiator replaces the SAs
    assert conn_dict(SPEC, "kernel-libipsec")["link-B"]["unique"] == "replace"


def test_restarted_agent_adopts_loaded_conn(vici_fake):
    first = StrongswanIpsec("/x", session_factory=lambda: vici_fake, events=False)
    first.ensure_connection(SPEC)
    vici_fake.log.clear()
    second = StrongswanIpsec("/x", session_factory=lambda: vici_fake, events=False)
    assert second.ensure_connection(SPEC) is False  # reloaded silently, SAs untouched
    assert vici_fake.verbs() == ["load-conn", "load-shared"]


def test_remove_tunnel(driver, vici_fake):
    driver.ensure_connection(SPEC)
    assert driver.remove_connection("link-B") is True
    assert vici_fake.verbs()[-3:] == ["unload-conn", "terminate", "unload-shared"]
    assert driver.connections() == {} and vici_fake.shared == {}
    assert driver.remove_connection("link-B") is False


def test_nat_detection(driver, vici_fake):
    nat = replace(SPEC, remote="198.18.3.2", remote_ts="198.19.3.2")
    driver.ensure_connection(nat)
    assert driver.connections()["link-B"].nat_detected  # peer's IKE address outside its TS
    vici_fake.sas["link-B"] = {**vici_fake.sas["link-B"], "child-sas": {}, "nat-local": b"yes"}
    assert driver.connections()["link-B"].nat_detected  # our own address is translated


def test_auth_failure_events_set_and_clear_last_error(driver, vici_fake):
    driver.ensure_connection(replace(SPEC, initiator=False))
    driver._on_event("log", b({"ikesa-name": "link-B", "msg": "tried 1 shared key for "
                               "'cloud-a' - 'cloud-b', but MAC mismatched"}))  # fmt: skip
    driver._on_event("log", b({"ikesa-name": "(unnamed)", "msg": "AUTHENTICATION_FAILED"}))
    st = driver.connections()["link-B"]
    assert "authentication failed" in st.last_error and not st.up
    driver._on_event("ike-updown", {"up": b"yes", "link-B": {}})
    assert driver.connections()["link-B"].last_error == ""


def test_vici_errors_become_driver_errors(vici_fake):
    def boom(msg):
        raise CommandException("Command failed: invalid proposal 'nonsense'")

    vici_fake.load_conn = boom
    d = StrongswanIpsec("/x", session_factory=lambda: vici_fake, events=False)
    with pytest.raises(DriverError, match="load-conn link-B: invalid proposal"):
        d.ensure_connection(SPEC)


def test_unreachable_socket_is_a_driver_error(tmp_path):
    d = StrongswanIpsec(str(tmp_path / "none.vici"), events=False)
    with pytest.raises(DriverError, match="none.vici"):
        d.backend()


def test_fake_ipsec():
    fake = FakeIpsec()
    assert fake.backend() == "kernel-libipsec"
    assert fake.ensure_connection(SPEC) is True and fake.ensure_connection(SPEC) is False
    st = fake.connections()["link-B"]
    assert st.up and st.children[0].mode == "TUNNEL" and st.children[0].state == "INSTALLED"
    fake.fail_auth("link-B")
    st = fake.connections()["link-B"]
    assert st.ike_state == "DOWN" and not st.up and "authentication failed" in st.last_error
    fake.fail_auth("link-B", False)
    assert fake.connections()["link-B"].up
    assert FakeIpsec(backend="kernel").ensure_connection(SPEC)
    kernel = FakeIpsec(backend="kernel")
    kernel.ensure_connection(SPEC)
    assert kernel.connections()["link-B"].children[0].mode == "TRANSPORT"
    assert fake.remove_connection("link-B") is True and fake.remove_connection("link-B") is False
    assert fake.connections() == {}
    assert (
        fake.calls == [("ensure_connection", "link-B")] * 2 + [("remove_connection", "link-B")] * 2
    )
