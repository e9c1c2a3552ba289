"""`intercloud diagnose`: the walk's verdicts and advice with every layer broken in turn (pure),
the service gathering them from fakes of the host, IPsec, the peer and the prober, and what a
peer's health answer and refusal may say about its clock (hostile values)."""

from __future__ import annotations

import dataclasses
import socket
from dataclasses import dataclass, field

import httpx
import pytest

from intercloud.domain import diagnosis as dg
from intercloud.domain.probe import TunnelHealth
from intercloud.errors import DriverError, NotFound, PeerError
from intercloud.federation import answers, failures
from intercloud.federation.answers import BadAnswer
from intercloud.federation.transport import Channel, PeerRef, SignatureRefused, http_date
from intercloud.service import admin, budget
from intercloud.service.diagnosis import Diagnoser
from intercloud.store import Store
from intercloud.store import models as m

NOW = 1_800_000_000.0
PORT = dg.Port("icv7", 7, "198.18.2.2", ("198.18.2.2",), True, 0.001, 0.002, 1364, 0.0)


def healthy(**changes) -> dg.Link:
    link = dg.Link(
        peer="B",
        remote="198.18.2.2",
        encrypted=True,
        route=dg.Route(True, "route to 198.18.2.2 via 198.18.1.1 dev eth0"),
        sa=dg.Sa("ESTABLISHED", True, "", (10, 14), (10, 14)),
        api=dg.Api("https://198.18.2.2:8700", None, rtt=0.01, peer_time=NOW + 1, our_time=NOW),
        ports=[PORT],
        prober=True,
        vm_mtu=1350,
    )
    return dataclasses.replace(link, **changes)


def verdict(link: dg.Link) -> tuple[str | None, dict[str, str], str]:
    out = dg.walk(link).as_dict()
    states = {lay["layer"]: lay["state"] for lay in out["layers"]}  # type: ignore[attr-defined]
    return out["broken"], states, out["advice"]  # type: ignore[return-value]


def test_nothing_broken_every_layer_ok_in_dependency_order():
    broken, states, advice = verdict(healthy())
    assert broken is None and advice == ""
    assert list(states) == list(dg.LAYERS)
    assert set(states.values()) == {"ok"}


def test_underlay_without_a_route_is_broken_first():
    broken, _, advice = verdict(healthy(route=dg.Route(False, "no route to 198.18.2.2")))
    assert broken == "underlay" and "route to 198.18.2.2" in advice


@pytest.mark.parametrize(
    ("error", "state", "needle"),
    [
        ("authentication failed: pre-shared key differs", "CONNECTING", "pre-shared keys differ"),
        ("no acceptable proposal: crypto proposals differ", "DOWN", "policies differ"),
        ("peer unreachable: no IKE answer", "CONNECTING", "UDP 500/4500"),
        ("", "CONNECTING", "UDP 500/4500"),
        ("", "DOWN", "responder"),
    ],
)
def test_ipsec_down_names_the_cause(error, state, needle):
    broken, states, advice = verdict(healthy(sa=dg.Sa(state, False, error)))
    assert broken == "ipsec" and needle in advice, advice
    assert states["underlay"] == "ok"


def test_installed_sa_with_no_esp_back_is_the_ipsec_layer_and_the_api_is_not_blamed():
    sa = dg.Sa("ESTABLISHED", True, "", (50, 50), (50, 53))
    api = dg.Api("https://198.18.2.2:8700", "timeout", "peer B unreachable")
    broken, states, advice = verdict(healthy(sa=sa, api=api))
    assert broken == "ipsec" and "UDP 4500" in advice
    assert states["api"] == "skipped" and states["tunnel"] == "skipped"


def test_no_ipsec_connection_or_no_driver_is_the_ipsec_layer():
    assert verdict(healthy(sa=None))[0] == "ipsec"
    broken, _, advice = verdict(healthy(sa=None, ipsec_refusal="no IPsec driver"))
    assert broken == "ipsec" and "unencrypted" in advice


def test_unencrypted_link_skips_ipsec():
    broken, states, _ = verdict(healthy(encrypted=False, sa=None))
    assert broken is None and states["ipsec"] == "skipped"


@pytest.mark.parametrize(
    ("failure", "needle"),
    [
        ("refused", "start the peer's agent"),
        ("timeout", "does not answer"),
        ("certificate", "--ca-file"),
        ("tls", "HTTPS"),
        ("signature", "HMAC key"),
        ("bad_answer", "same intercloud version"),
        ("error", "its log"),
    ],
)
def test_api_failures_each_have_their_advice(failure, needle):
    api = dg.Api("https://198.18.2.2:8700", failure, "peer B ...", our_time=NOW)
    broken, states, advice = verdict(healthy(api=api))
    assert broken == "api" and needle in advice, advice
    assert states["clock"] == "skipped" and states["fdb"] == "ok"  # ports need no API


def test_api_timeout_while_large_packets_die_is_the_mtu():
    api = dg.Api("https://198.18.2.2:8700", "timeout", "peer B unreachable", our_time=NOW)
    big_lost = dataclasses.replace(PORT, big=None)
    broken, states, advice = verdict(healthy(api=api, ports=[big_lost]))
    assert broken == "mtu" and states["api"] == "skipped" and "--mtu" in advice
    # the same timeout with every probe answered stays the API's
    assert verdict(healthy(api=api))[0] == "api"


def test_refused_signature_with_the_peers_clock_past_the_window_is_the_clock():
    api = dg.Api("https://b", "signature", "refused", peer_time=NOW + 600, our_time=NOW)
    broken, states, advice = verdict(healthy(api=api))
    assert broken == "clock" and states["api"] == "ok" and "synchronise" in advice
    clock = dg.walk(healthy(api=api)).layers[3]
    assert "600.0 s ahead of ours" in clock.detail and "±300 s" in clock.detail


def test_refused_signature_within_the_window_is_the_key():
    api = dg.Api("https://b", "signature", "refused", peer_time=NOW - 2, our_time=NOW)
    broken, states, _ = verdict(healthy(api=api))
    assert broken == "api" and states["clock"] == "ok"


def test_clock_skew_in_a_health_answer_and_an_old_peer_without_time():
    api = dg.Api("https://b", None, rtt=0.01, peer_time=NOW - 400, our_time=NOW)
    assert verdict(healthy(api=api))[0] == "clock"
    layer = dg.walk(healthy(api=api)).layers[3]
    assert "400.0 s behind ours" in layer.detail
    old = dg.Api("https://b", None, rtt=0.01, our_time=NOW)
    broken, states, _ = verdict(healthy(api=old))
    assert broken is None and states["clock"] == "skipped"


def test_missing_port_or_flood_elsewhere_is_the_fdb():
    gone = dataclasses.replace(PORT, flood=None)
    broken, states, advice = verdict(healthy(ports=[gone]))
    assert broken == "fdb" and states["tunnel"] == "skipped" and "reconciler" in advice
    elsewhere = dataclasses.replace(PORT, flood=("198.18.9.9",))
    out = dg.walk(healthy(ports=[elsewhere]))
    assert out.broken == "fdb" and "floods to 198.18.9.9" in out.layers[4].detail


def test_no_answer_through_the_tunnel_is_the_tunnel_and_skips_mtu():
    dead = dataclasses.replace(PORT, small=None, big=None, loss=1.0)
    broken, states, advice = verdict(healthy(ports=[dead]))
    assert broken == "tunnel" and "UDP 4789" in advice and states["mtu"] == "skipped"
    quiet = dataclasses.replace(dead, silent_for=12.4)
    assert "(last answer 12 s ago)" in dg.walk(healthy(ports=[quiet])).layers[5].detail


def test_small_probe_answered_big_one_not_is_the_mtu():
    big_lost = dataclasses.replace(PORT, big=None)
    out = dg.walk(healthy(ports=[big_lost]))
    assert out.broken == "mtu" and "--mtu" in out.as_dict()["advice"]  # type: ignore[operator]
    assert "1364-byte" in out.layers[-1].detail


def test_without_a_prober_or_expansions_the_tunnel_layers_are_skipped():
    broken, states, _ = verdict(healthy(prober=False))
    assert broken is None and states["tunnel"] == states["mtu"] == "skipped"
    assert states["fdb"] == "ok"
    broken, states, _ = verdict(healthy(ports=[]))
    assert broken is None and {states[k] for k in ("fdb", "tunnel", "mtu")} == {"skipped"}


def test_disabled_link_says_so():
    broken, _, advice = verdict(healthy(enabled=False))
    assert broken == "underlay" and "--enable" in advice


# -- the service, on fakes -------------------------------------------------------------------


@dataclass
class FakeChild:
    packets_in: int = 0
    packets_out: int = 0


@dataclass
class FakeConn:
    ike_state: str = "ESTABLISHED"
    last_error: str = ""
    children: list[FakeChild] = field(default_factory=lambda: [FakeChild(5, 5)])

    @property
    def up(self) -> bool:
        return self.ike_state == "ESTABLISHED" and bool(self.children)


class FakeIpsec:
    refusal: str | None = None

    def __init__(self, conn: FakeConn | None) -> None:
        self.conn = conn
        self.looks = 0

    def connections(self):
        self.looks += 1
        return {"link-B": self.conn} if self.conn else {}


class FakePeer:
    def __init__(self, answer=None, error: PeerError | None = None, ipsec=None) -> None:
        self.answer, self.error, self.ipsec = answer, error, ipsec
        self.refs: list[PeerRef] = []

    def peer(self, ref):
        self.refs.append(ref)
        return self

    def health(self, family=None):
        if self.ipsec is not None:  # the call's packets leave through the SA, none return
            self.ipsec.conn.children[0].packets_out += 3
        if self.error is not None:
            raise self.error
        return self.answer


class FakeHost:
    reads_ports = True

    def __init__(self, floods: dict[str, tuple[str, ...]]) -> None:
        self.floods = floods

    def route(self, address):
        return dg.Route(True, f"route to {address} via 198.18.1.1 dev eth0")

    def flood(self, port):
        return self.floods.get(port)


class FakeProber:
    available = True
    unavailable_reason = None

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.asked: list[tuple[str, int]] = []

    def health(self, port):
        return TunnelHealth(NOW - 60, NOW - 1, 0.002, 0.0, 30, 30)

    def check(self, port, size, timeout):
        self.asked.append((port, size))
        return 0.002 if size <= self.max_size else None


@pytest.fixture
def store():
    st = Store("sqlite://")
    st.migrate()
    with st.session() as s:
        admin.create_peer(s, "A", "B", "https://b:8700", "198.18.2.2", "k" * 32, plain_http=True)
        admin.create_link(
            s, ("vxlan",), True, {"peer": "B", "local_endpoint": "198.18.1.2", "psk": "p" * 20}
        )
        peer = s.query(m.Peer).one()
        exp = m.Expansion(uid="u1", project="p1", network="net1", cidr="10.0.0.0/24")
        exp.targets.append(m.Target(peer=peer, vni=7, status="active"))
        # ports the walk leaves alone: not agreed yet, and one another member relays for us
        other = m.Expansion(uid="u2", project="p1", network="net2", cidr="10.0.1.0/24")
        other.targets.append(m.Target(peer=peer, vni=8, status="pending"))
        s.add(other)
        third = m.Expansion(uid="u3", project="p2", network="net1", cidr="10.0.2.0/24")
        third.targets.append(
            m.Target(peer=peer, vni=9, status="active", reason="reached through C")
        )
        s.add(third)
        s.add(exp)
    yield st
    st.dispose()


def diagnoser(store, peer, ipsec, floods=None, prober=None):
    clock = iter([NOW, NOW + 0.02] * 10)
    return Diagnoser(
        store,
        "ic",
        peer,
        ipsec,
        FakeHost({"icv7": ("198.18.2.2",)} if floods is None else floods),
        prober,
        clock=lambda: next(clock),
    )


def test_service_healthy_link_with_probes_at_the_vm_mtu(store):
    prober = FakeProber(max_size=2000)
    peer = FakePeer(answers.Health("B", None, NOW + 0.5))
    out = diagnoser(store, peer, FakeIpsec(FakeConn()), prober=prober).link("B")
    assert out.broken is None, out.as_dict()
    with store.session() as s:  # the VM MTU of the link's budget, plus the Ethernet header
        big = budget.link_budget(s.query(m.Link).one()).vm_mtu + 14
    assert prober.asked == [("icv7", 64), ("icv7", big)]
    assert peer.refs[0].name == "B"


def test_service_big_probe_lost_is_the_mtu(store):
    out = diagnoser(
        store, FakePeer(answers.Health("B", None)), FakeIpsec(FakeConn()), prober=FakeProber(1000)
    ).link("B")
    assert out.broken == "mtu"


def test_service_esp_out_none_back_during_the_api_call_is_ipsec(store):
    ipsec = FakeIpsec(FakeConn())
    peer = FakePeer(error=PeerError("peer B unreachable"), ipsec=ipsec)
    out = diagnoser(store, peer, ipsec).link("B")
    assert out.broken == "ipsec" and ipsec.looks == 2
    assert "3 packets left" in out.layers[1].detail


def test_service_refusal_with_a_skewed_date_is_the_clock(store):
    refused = SignatureRefused("peer B refused our signature", peer_time=NOW + 900)
    out = diagnoser(store, FakePeer(error=refused), FakeIpsec(FakeConn())).link("B")
    assert out.broken == "clock"


def test_service_port_missing_is_the_fdb_and_unknown_peer_is_404(store):
    out = diagnoser(
        store, FakePeer(answers.Health("B", None)), FakeIpsec(FakeConn()), floods={}
    ).link("B")
    assert out.broken == "fdb"
    with pytest.raises(NotFound, match="'Z'"):
        diagnoser(store, FakePeer(), FakeIpsec(None)).link("Z")
    assert [
        d.peer
        for d in diagnoser(
            store, FakePeer(answers.Health("B", None)), FakeIpsec(FakeConn())
        ).links()
    ] == ["B"]


# -- the peer's clock, from outside -----------------------------------------------------------


def test_health_time_parsed_strictly():
    ok = answers.health("B", {"name": "B", "time": "2026-12-04T19:54:15.005245+00:00"})
    assert ok.time == pytest.approx(1796414055.005245)
    assert answers.health("B", {"name": "B"}).time is None
    assert answers.health("B", {"name": "B", "time": None}).time is None


@pytest.mark.parametrize(
    "value",
    [
        12345,
        1.5,
        True,
        [],
        {},
        "yesterday",
        "2026-12-04T19:54:15",  # no offset
        "x" * 41,
        "2026-12-04T19:54:15+00:00\n",
        "9999-12-31T23:59:59+00:00",
        "0001-01-01T00:00:00+00:00",
        "２０２６-12-04T19:54:15+00:00",
    ],
)
def test_health_time_hostile_values_are_a_bad_answer(value):
    with pytest.raises(BadAnswer, match="bad answer to health: time"):
        answers.health("B", {"name": "B", "time": value})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Fri, 04 Dec 2026 19:54:15 GMT", 1796414055.0),
        (None, None),
        ("", None),
        ("not a date", None),
        ("Fri, 04 Dec 2026 19:54:15", None),  # no zone
        ("x" * 100, None),
        ("Fri, 04 Dec 99999999999 19:54:15 GMT", None),
    ],
)
def test_http_date_of_a_refusal(value, expected):
    assert http_date(value) == expected


def test_a_401_carries_the_peers_date():
    def handler(request):
        return httpx.Response(401, headers={"date": "Fri, 04 Dec 2026 19:54:15 GMT"})

    ch = Channel(
        "A",
        PeerRef("B", "http://b", "k" * 32),
        transport=httpx.MockTransport(handler),
        plain_http=True,
    )
    with pytest.raises(SignatureRefused) as caught:
        ch.request("GET", "/v1/federation/health")
    assert caught.value.peer_time == 1796414055.0
    assert failures.kind(caught.value) == "signature"


def test_failure_kinds_of_real_transport_errors():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ch = Channel("A", PeerRef("B", f"http://127.0.0.1:{port}", "k" * 32), plain_http=True)
    with pytest.raises(PeerError) as caught:
        ch.request("GET", "/x")
    assert failures.kind(caught.value) == "refused"
    with socket.socket() as srv:  # accepts, never answers
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        url = f"http://127.0.0.1:{srv.getsockname()[1]}"
        slow = Channel("A", PeerRef("B", url, "k" * 32), plain_http=True, timeout=0.2)
        with pytest.raises(PeerError) as caught:
            slow.request("GET", "/x")
        assert failures.kind(caught.value) == "timeout"
        slow.close()
    assert failures.kind(BadAnswer("peer B: bad answer")) == "bad_answer"
    assert failures.kind(PeerError("peer B refused: HTTP 500")) == "error"
    ch.close()


def test_a_port_the_prober_refuses_is_skipped_with_its_reason():
    off = dataclasses.replace(PORT, probed=False, small=None, big=None, probe_error="probes off")
    broken, states, _ = verdict(healthy(ports=[off]))
    assert broken is None and states["tunnel"] == "skipped"
    assert dg.walk(healthy(ports=[off])).layers[5].detail == "probes off"


def test_service_prober_errors_skip_the_tunnel_layers(store):
    class Refusing(FakeProber):
        def check(self, port, size, timeout):
            raise DriverError("tunnel probes are off: no CAP_NET_RAW")

    peer = FakePeer(answers.Health("B", None))
    out = diagnoser(store, peer, FakeIpsec(FakeConn()), prober=Refusing(0)).link("B")
    assert out.broken is None and "no CAP_NET_RAW" in out.layers[5].detail


def test_service_prober_unavailable_says_why(store):
    class Off(FakeProber):
        available = False
        unavailable_reason = "no CAP_NET_RAW"

    peer = FakePeer(answers.Health("B", None))
    prober = Off(2000)
    out = diagnoser(store, peer, FakeIpsec(FakeConn()), prober=prober).link("B")
    assert out.broken is None and out.layers[5].detail == "no tunnel probe: no CAP_NET_RAW"
    assert prober.asked == []


def test_service_an_error_target_keeps_its_port_in_the_walk(store):
    with store.session() as s:
        s.query(m.Target).filter(m.Target.vni == 7).one().status = "error"
    prober = FakeProber(max_size=2000)
    peer = FakePeer(answers.Health("B", None))
    out = diagnoser(store, peer, FakeIpsec(FakeConn()), prober=prober).link("B")
    assert out.broken is None and {p for p, _ in prober.asked} == {"icv7"}
