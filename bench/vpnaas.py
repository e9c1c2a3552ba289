"""A VPNaaS equivalent: what OpenStack VPNaaS sets up, in namespaces.

    q1 10.20.1.10 ── qr0 10.20.1.1 [router r1: charon] eth0 198.18.1.2 ─┐
                                                                       WAN router
    q2 10.20.2.10 ── qr0 10.20.2.1 [router r2: charon] eth0 198.18.2.2 ─┘

Each router namespace runs its own charon (kernel-libipsec, as every charon here) with one
IKE SA and one tunnel-mode CHILD_SA 10.20.1.0/24 === 10.20.2.0/24, routed at L3, with the
agent's default crypto (the same proposal strings the agent's default policies produce).

Variant `lanes=2` (a multi-core experiment): a second charon in each router (own IKE ports,
fwmark and routing table 221) with its own IKE SA and CHILD_SA for the same subnets. The
iperf3 client binds its 10 connections to consecutive ports (`--cport`); nftables marks the odd
ones (and their replies) before routing and `ip rule fwmark` sends them through the second
charon's TUN device, so each charon encrypts half the flows. libipsec has one encrypting and one
decrypting thread per charon (src/libipsec/ipsec_processor.c), whatever the number of SAs: a
second charon is the only way to get a second one.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from bench import multicore
from bench import ns as nsmod
from bench.dataplane import Config, charon_pids, wait_for
from bench.measure import Endpoint
from intercloud.drivers.ipsec import strongswan
from intercloud.drivers.ipsec.base import ConnectionSpec
from intercloud.errors import DriverError
from intercloud.lab import charon as charon_mod
from intercloud.service import policies


def _spec(i: int, psk: str) -> ConnectionSpec:
    me, peer = i + 1, 2 - i
    return ConnectionSpec(
        name="vpn",
        local=f"198.18.{me}.2",
        remote=f"198.18.{peer}.2",
        local_id=f"r{me}",
        remote_id=f"r{peer}",
        psk=psk,
        ike_proposals=policies.to_ike(None).proposals(),
        esp_proposals=policies.to_ipsec(None).proposals(),
        mode="tunnel",
        initiator=i == 0,
        local_ts=f"10.20.{me}.0/24",
        remote_ts=f"10.20.{peer}.0/24",
    )


def _load(socket_path: str, spec: ConnectionSpec, port: int | None) -> Any:
    """load-conn + load-shared over VICI (the conn dict is the agent driver's own)."""
    session = strongswan.unix_session(socket_path)
    conn = strongswan.conn_dict(spec, "kernel-libipsec")
    if port is not None:
        conn[spec.name].update(local_port=str(port), remote_port=str(port))
    session.load_conn(conn)
    owners = [spec.local_id, spec.remote_id]
    session.load_shared({"id": spec.name, "type": "IKE", "data": spec.psk, "owners": owners})
    return session


def _installed(session: Any) -> bool:
    return multicore.child_bytes(session) is not None


def build(topo: nsmod.Topology, workdir: Path, *, lanes: int = 1, tag: str = "p") -> Config:
    wan = topo.wan(tag)
    routers, vms = [], []
    for i in (0, 1):
        r = topo.add(f"{tag}r{i + 1}", forward=True)
        topo.uplink(wan, r, i + 1)
        vms.append(
            topo.vm(
                f"{tag}q{i + 1}",
                r,
                "qr0",
                f"10.20.{i + 1}.10/24",
                gw_cidr=f"10.20.{i + 1}.1/24",
                via=f"10.20.{i + 1}.1",
            )
        )
        routers.append(r)
    psk = secrets.token_hex(24)
    sessions = []
    for lane in range(lanes):
        charons = []
        for i, r in enumerate(routers):
            d = workdir / f"{tag}r{i + 1}-lane{lane}"
            d.mkdir(parents=True, exist_ok=True)
            c = charon_mod.Charon(r, d, lane=lane)
            c.start()
            charons.append(c)
        port = charon_mod.lane_port(lane) if lane else None
        pair = [_load(c.socket_path, _spec(i, psk), port) for i, c in enumerate(charons)]
        list(pair[0].initiate({"child": "vpn", "ike": "vpn", "timeout": "-1"}))
        try:
            wait_for(lambda p=pair: all(_installed(s) for s in p), 30, f"VPN SA lane {lane}")
        except RuntimeError as exc:
            raise DriverError(f"{exc}; charon log: {charons[0]._tail()}") from exc
        sessions += pair
        if lane:  # odd client ports (marked before routing) go through the second charon
            for r in routers:
                multicore.nft(r, multicore.lane_nft("ip", "prerouting"))
                nsmod.ip(
                    r,
                    "rule",
                    "add",
                    "prio",
                    "110",
                    "fwmark",
                    str(multicore.MARK),
                    "lookup",
                    str(charon_mod.lane_table(lane)),
                )
    for s in sessions:
        s.transport.close()
    sockets = [str(workdir / f"{tag}r{i + 1}-lane0" / "charon.vici") for i in (0, 1)]
    key = "vpnaas" if lanes == 1 else f"vpnaas_{lanes}charons"
    label = (
        "VPNaaS equivalent (L3, 1 SA)" if lanes == 1 else (f"VPNaaS, {lanes} charons per router")
    )
    notes = "tunnel mode 10.20.1.0/24 === 10.20.2.0/24, " + "/".join(
        policies.to_ipsec(None).proposals()
    )
    if lanes > 1:
        notes = f"flows split over {lanes} charons by client port (iperf3 --cport, ip rule)"
    ep = Endpoint(vms[0], vms[1], "10.20.2.10", routers[0], "eth0", charon_pids(*routers))
    if lanes > 1:
        ep.cport = multicore.CPORT
    return Config(key, label, ep, notes, extra={"sockets": sockets})


def sa_setup_seconds(cfg: Config, reps: int) -> list[float]:
    """Baseline for bringing a link up: charon alone (no agent) terminating and establishing
    the routers' IKE SA + CHILD_SA, until both sides have it INSTALLED."""
    sessions = [strongswan.unix_session(p) for p in cfg.extra["sockets"]]
    times = []
    try:
        for _ in range(reps):
            list(sessions[0].terminate({"ike": "vpn", "force": "yes", "timeout": "2000"}))
            wait_for(lambda: not any(_installed(s) for s in sessions), 10, "SAs gone")
            t0 = time.monotonic()
            list(sessions[0].initiate({"child": "vpn", "ike": "vpn", "timeout": "10000"}))
            wait_for(lambda: all(_installed(s) for s in sessions), 30, "SAs up", interval=0.01)
            times.append(time.monotonic() - t0)
    finally:
        for s in sessions:
            s.transport.close()
    return times
