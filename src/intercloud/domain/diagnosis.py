"""`intercloud diagnose`: the layers of one link, walked in the order they depend on each other,
each judged from what was observed, and the first broken one named with one line of advice.

Pure: the observations come in (service/diagnosis.py gathers them), verdicts go out.

    underlay  a route to the peer's underlay address (and its next hop) from the agent's host
    ipsec     the link's IKE SA and CHILD_SA are up and ESP comes back from the peer
              (before the API: an encrypted link carries the agents' own calls too)
    api       the peer's agent answers its health call over TLS, its certificate the pinned one
    clock     both clocks agree within the signature window (federation/signing.py)
    fdb       each tunnel port of the link exists and floods to the peer's tunnel address
    tunnel    a probe frame through each tunnel port is answered by the peer's agent
    mtu       a probe frame of the VM MTU crosses each tunnel port as well

A layer after the first broken one is `skipped` where its check cannot mean anything (the API
behind a dead SA); one whose check stands on its own is still reported: the tunnel layers need
the underlay and the SA, not the API. An API call that timed out while small packets pass and
large ones die is the MTU's doing (a TLS handshake needs full-size segments): `mtu` is named.
"""

from __future__ import annotations

from intercloud.domain.diagnosis_facts import (
    API_FAILURES,
    BROKEN,
    ETHERNET_HEADER,
    LAYERS,
    NO_PROBER,
    OK,
    SKIPPED,
    SMALL_PROBE,
    Api,
    Diagnosis,
    Layer,
    Link,
    Port,
    Route,
    Sa,
)

__all__ = [
    "API_FAILURES",
    "BROKEN",
    "ETHERNET_HEADER",
    "LAYERS",
    "NO_PROBER",
    "OK",
    "SKIPPED",
    "SMALL_PROBE",
    "Api",
    "Diagnosis",
    "Layer",
    "Link",
    "Port",
    "Route",
    "Sa",
    "walk",
]


# -- the walk ------------------------------------------------------------------------------------


def walk(link: Link) -> Diagnosis:
    out = Diagnosis(link.peer)
    if not link.enabled:
        why = "the link is disabled by the administrator"
        out.layers = [Layer(name, SKIPPED, why) for name in LAYERS]
        out.layers[0] = Layer(
            "underlay", BROKEN, why, f"enable it: intercloud link update {link.peer} --enable"
        )
        return out
    out.layers = [underlay(link), ipsec(link)]
    # The tunnel ports need the underlay and the SA, not the API: their layers stand alone.
    carries = all(lay.state != BROKEN for lay in out.layers)
    below = tunnel_layers(link, carries)
    out.layers += [api(link, ipsec_ok=out.layers[-1].state != BROKEN), clock(link)]
    if _large_packets_die(link, below):
        # a timed-out API call whose small packets pass (ESP came back, small probes too) is
        # the path dropping large ones: a TLS handshake needs full-size segments
        detail = f"{out.layers[2].detail}: large packets die on the path (mtu, below)"
        out.layers[2] = Layer("api", SKIPPED, detail)
    out.layers += below
    return out


def _large_packets_die(link: Link, below: list[Layer]) -> bool:
    states = {lay.layer: lay.state for lay in below}
    timed_out = link.api is not None and link.api.failure == "timeout"
    return timed_out and states.get("tunnel") == OK and states.get("mtu") == BROKEN


def underlay(link: Link) -> Layer:
    route = link.route
    if route is None:
        return Layer("underlay", SKIPPED, "the route to the peer was not read")
    if route.ok:
        return Layer("underlay", OK, route.detail)
    return Layer(
        "underlay",
        BROKEN,
        route.detail,
        f"give the agent's host a route to {link.remote} (its underlay interface, address "
        "and gateway)",
    )


def ipsec(link: Link) -> Layer:
    if not link.encrypted:
        return Layer("ipsec", SKIPPED, "the link is not encrypted")
    if link.ipsec_refusal:
        return Layer(
            "ipsec",
            BROKEN,
            link.ipsec_refusal,
            'configure an IPsec driver ([ipsec] driver = "strongswan") or make the link '
            "unencrypted on both sides",
        )
    sa = link.sa
    if sa is None:
        return Layer(
            "ipsec",
            BROKEN,
            "no IPsec connection loaded for this link",
            "check that charon runs and its VICI socket is the one in [ipsec] vici_socket; "
            "the agent's log says why the connection was not loaded",
        )
    if not sa.up:
        return _sa_down(link, sa)
    silent = _silent(sa)
    if silent:
        return Layer(
            "ipsec",
            BROKEN,
            f"IKE {sa.ike_state}, CHILD_SA installed, but {silent}",
            f"ESP from {link.remote} does not arrive: a firewall on the path drops UDP 4500 "
            "(ESP in UDP) or ESP, or the peer lost its SA (it renegotiates after DPD); the "
            "underlay route is fine",
        )
    return Layer("ipsec", OK, f"IKE {sa.ike_state}, CHILD_SA installed")


def _silent(sa: Sa) -> str:
    """Why the SA looks dead although installed: packets left during the API check and none
    came back ("" if some did, or if nothing was measured)."""
    if sa.packets_in is None or sa.packets_out is None:
        return ""
    sent = sa.packets_out[1] - sa.packets_out[0]
    got = sa.packets_in[1] - sa.packets_in[0]
    if sent > 0 and got <= 0:
        return f"{sent} packets left through the SA during the API check and none came back"
    return ""


IKE_ADVICE = (
    (
        "authentication failed",
        "the pre-shared keys differ: set the same key on both sides "
        "(intercloud link update {peer} --psk-file FILE)",
    ),
    (
        "proposal",
        "the IKE/IPsec policies differ: give both links policies with a common proposal",
    ),
    (
        "traffic selectors",
        "the peers disagree on the tunnel addresses: check both links' endpoints",
    ),
    (
        "no IKE answer",
        "no IKE answer from {remote}: a firewall on the path drops UDP 500/4500, or the "
        "peer's charon is not running; the underlay route is fine",
    ),
)


def _sa_down(link: Link, sa: Sa) -> Layer:
    why = sa.last_error or f"IKE {sa.ike_state}"
    detail = f"IPsec to {link.peer} not up: {why}"
    for needle, advice in IKE_ADVICE:
        if needle in sa.last_error:
            return Layer("ipsec", BROKEN, detail, advice.format(peer=link.peer, remote=link.remote))
    if sa.ike_state == "CONNECTING":
        advice = IKE_ADVICE[-1][1].format(peer=link.peer, remote=link.remote)
    elif sa.ike_state == "ESTABLISHED":
        advice = "IKE is up but no CHILD_SA: the peer refused it; its charon's log says why"
    else:
        advice = (
            "no IKE SA: this side is the responder when its name sorts after the peer's; "
            "check that the peer's agent and charon run and that UDP 500/4500 pass"
        )
    return Layer("ipsec", BROKEN, detail, advice)


API_ADVICE = {
    "refused": "nothing listens at {url}: start the peer's agent, or correct the peer's "
    "federation URL (intercloud peer update {peer} --url URL)",
    "timeout": "{url} does not answer: the peer's host is down or a firewall drops TCP to "
    "its API port; check that port on the path",
    "certificate": "the peer's certificate does not chain to the CA pinned here: pin its CA "
    "again (intercloud peer update {peer} --ca-file FILE) or renew the peer's certificate",
    "tls": "TLS with {url} failed: check that the peer serves HTTPS on that port",
    "signature": "the peer refused our signature while the clocks agree: the peer's HMAC key "
    "differs on the two sides (set by peer create --key-file on each)",
    "bad_answer": "the peer's agent answers what this one cannot use: run the same "
    "intercloud version on both sides",
    "error": "the peer's agent failed to answer: its log says why",
}


def api(link: Link, ipsec_ok: bool) -> Layer:
    a = link.api
    if a is None:
        return Layer("api", SKIPPED, "the peer's API was not called")
    if a.failure is None:
        rtt = f" in {a.rtt * 1000:.0f} ms" if a.rtt is not None else ""
        return Layer("api", OK, f"{a.url} answers its health call{rtt}")
    if not ipsec_ok and a.failure in ("timeout", "refused", "error"):
        return Layer("api", SKIPPED, f"not meaningful while IPsec is broken ({a.detail})")
    if a.failure == "signature" and _skew(a) is not None and abs(_skew(a) or 0) > link.window:
        return Layer("api", OK, f"{a.url} answers, but refuses our signature (clock: below)")
    advice = API_ADVICE.get(a.failure, API_ADVICE["error"])
    return Layer("api", BROKEN, a.detail, advice.format(url=a.url, peer=link.peer))


def _skew(a: Api) -> float | None:
    if a.peer_time is None or a.our_time is None:
        return None
    return a.peer_time - a.our_time


def clock(link: Link) -> Layer:
    a = link.api
    skew = _skew(a) if a is not None else None
    if a is None or skew is None:
        why = "the peer's API did not answer"
        if a is not None and a.failure is None:
            why = "the peer's health answer has no time (an older agent)"
        return Layer("clock", SKIPPED, why)
    ahead = f"{abs(skew):.1f} s {'ahead of' if skew >= 0 else 'behind'} ours"
    if abs(skew) <= link.window:
        return Layer("clock", OK, f"the peer's clock is {ahead} (signatures: ±{link.window} s)")
    refused = " and refuses our signatures" if a.failure == "signature" else ""
    return Layer(
        "clock",
        BROKEN,
        f"the peer's clock is {ahead}{refused}; signatures are accepted within ±{link.window} s",
        "synchronise both hosts' clocks (NTP, e.g. systemd-timesyncd or chrony)",
    )


def tunnel_layers(link: Link, carries: bool) -> list[Layer]:
    if not carries:
        why = "not meaningful while the underlay or IPsec is broken"
        return [Layer(name, SKIPPED, why) for name in ("fdb", "tunnel", "mtu")]
    ports = link.ports
    if ports is not None and not ports:
        why = "no expansion crosses this link"
        return [Layer(name, SKIPPED, why) for name in ("fdb", "tunnel", "mtu")]
    out = [fdb(link)]
    if out[0].state == BROKEN:
        why = "not meaningful while a tunnel port is missing or floods elsewhere"
        return out + [Layer(name, SKIPPED, why) for name in ("tunnel", "mtu")]
    out.append(tunnel(link))
    out.append(mtu(link, tunnel_ok=out[-1].state == OK))
    return out


def fdb(link: Link) -> Layer:
    if link.ports is None:
        return Layer("fdb", SKIPPED, "this data plane's tunnel ports are not read")
    for p in link.ports:
        if p.flood is None:
            return Layer(
                "fdb",
                BROKEN,
                f"no tunnel port {p.name} (vni {p.vni}) on this host",
                "the reconciler has not built it: intercloud status and the agent's log say why",
            )
        if p.remote not in p.flood:
            where = ", ".join(p.flood) or "nowhere"
            return Layer(
                "fdb",
                BROKEN,
                f"{p.name} (vni {p.vni}) floods to {where}, not to {link.peer}'s {p.remote}",
                "the port was changed behind the agent's back: the next reconcile pass "
                "rebuilds it (or restart the agent)",
            )
    names = ", ".join(f"{p.name}→{p.remote}" for p in link.ports)
    return Layer("fdb", OK, f"flood entries: {names}")


def _probed(link: Link) -> list[Port] | None:
    if not link.prober or link.ports is None:
        return None
    return [p for p in link.ports if p.probed]


def tunnel(link: Link) -> Layer:
    ports = _probed(link)
    if ports is None:
        return Layer("tunnel", SKIPPED, link.prober_off)
    if not ports:
        errors = {p.probe_error for p in link.ports or () if p.probe_error}
        why = "; ".join(sorted(errors)) or "no tunnel port of this link could be probed"
        return Layer("tunnel", SKIPPED, why)
    for p in ports:
        if p.small is None:
            loss = f" (recent loss {p.loss:.0%})" if p.loss is not None else ""
            if p.silent_for is not None:
                loss = f" (last answer {p.silent_for:.0f} s ago)"
            return Layer(
                "tunnel",
                BROKEN,
                f"no answer through {p.name} (vni {p.vni}) from {link.peer}'s agent{loss}",
                "IKE and the API work but VXLAN frames do not cross: something drops UDP 4789 "
                f"to or from {p.remote} (a firewall before encryption, or on the peer's side), "
                "or the peer has no port for this VNI",
            )
    rtts = ", ".join(f"{p.name} {p.small * 1000:.1f} ms" for p in ports if p.small is not None)
    return Layer("tunnel", OK, f"probe answered through {rtts}")


def mtu(link: Link, tunnel_ok: bool) -> Layer:
    ports = _probed(link)
    if ports is None:
        return Layer("mtu", SKIPPED, link.prober_off)
    if not ports:
        return Layer("mtu", SKIPPED, "no tunnel port of this link could be probed")
    if not tunnel_ok:
        return Layer("mtu", SKIPPED, "not meaningful while small probes do not cross")
    for p in ports:
        if p.big is None:
            return Layer(
                "mtu",
                BROKEN,
                f"a {SMALL_PROBE}-byte probe crosses {p.name} but a {p.big_size}-byte one "
                f"(VM MTU {link.vm_mtu} + Ethernet) does not",
                "the path drops large packets: lower the link's MTU to what the underlay "
                f"carries (intercloud link update {link.peer} --mtu N), or fix the MTU on "
                "the path",
            )
    size = ports[0].big_size if ports else 0
    return Layer("mtu", OK, f"{size}-byte probes (VM MTU {link.vm_mtu}) cross")
