"""Multi-core experiment on the agent's own data path: an encrypted expansion whose link is
carried by two charons per gateway instead of one.

kernel-libipsec runs one encrypting and one decrypting thread per charon, whatever the number
of SAs (src/libipsec/ipsec_processor.c queues every packet on one outbound and one inbound
job), so several CHILD_SAs in one charon cannot spread the work. A second charon can:

* each gateway of an encrypted lab gets a second charon (`LaneCharon`: IKE ports
  4510/4511, socket fwmark 0x1c2, routing table 221) with its own IKE SA and CHILD_SA between
  the same two endpoints, same crypto, same PSK scheme as the agent's driver (its conn dict);
* nftables (bridge family, its own table) marks the bridged frames of half the TCP flows
  (odd client ports; iperf3 `--cport` gives the 10 connections consecutive ports) with mark
  2; the kernel VXLAN device keeps the mark on the outer packet, and `ip rule fwmark 2 lookup
  221` sends those VXLAN packets into the second charon's TUN device instead of the first
  one's (table 220);
* `ip rule fwmark 0x1c1|0x1c2 lookup main` lets each charon's own IKE/ESP packets leave over
  the underlay: each charon's own rule (`not fwmark <its mark> lookup <its table>`) would
  otherwise send the other one's ESP into its tunnel, encrypting it twice.

The agent is not told: it keeps managing its own charon and link. How the agent could make this
its default (a lane per core, split by the VXLAN source port range instead of inner ports) is
in the report. `lane_bytes` reads both charons' SA counters to prove that both lanes carried
traffic.
"""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
from pathlib import Path
from typing import Any

from bench import ns as nsmod
from bench.dataplane import Config, charon_pids, wait_for
from intercloud.drivers.ipsec import charon as charon_mod
from intercloud.drivers.ipsec import strongswan
from intercloud.drivers.ipsec.base import TunnelSpec
from intercloud.lab.topology import Lab
from intercloud.service import policies

CPORT = 40000  # iperf3 --cport base: data connections use CPORT + k*10 .. + 9

MARK = 2


class LaneCharon(charon_mod.Charon):
    """A charon with its own IKE ports, socket fwmark and routing table, so that a second
    instance can run in a namespace that already has one."""

    def __init__(self, netns: str, workdir: Path, *, lane: int) -> None:
        super().__init__(netns, workdir)
        self.lane = lane
        self.port, self.port_nat_t = 4500 + 10 * lane, 4501 + 10 * lane
        self.fwmark, self.table = charon_mod.FWMARK + lane, 220 + lane

    def start(self, timeout: float = 15.0) -> None:
        run_dir = self.workdir / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        Path(self.socket_path).unlink(missing_ok=True)
        text = charon_mod.conf_text(
            f"unix://{self.socket_path}", str(self.log_path), fwmark=self.fwmark
        )
        extra = (
            f"  port = {self.port}\n  port_nat_t = {self.port_nat_t}\n"
            f"  routing_table = {self.table}\n  routing_table_prio = {self.table}\n"
        )
        self.conf_path.write_text(text.replace("charon {\n", "charon {\n" + extra, 1))
        inner = f"mount --bind {shlex.quote(str(run_dir))} /run && exec {charon_mod.CHARON}"
        argv = ["ip", "netns", "exec", self.netns, "unshare", "-m", "--propagation", "private"]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        env["STRONGSWAN_CONF"] = str(self.conf_path)
        with open(self.workdir / "charon.out", "ab") as out:
            self._proc = subprocess.Popen(
                [*argv, "sh", "-c", inner],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        wait_for(self._answers, timeout, f"charon lane {self.lane} in {self.netns}")


def lane_nft(family: str, hook: str) -> str:
    """Mark the packets of TCP flows whose client port is odd (iperf3 --cport gives its 10
    connections consecutive ports: 5 odd, 5 even), both directions."""
    return f"""table {family} bench_lanes {{
    chain lanes {{
        type filter hook {hook} priority filter; policy accept;
        tcp sport >= {CPORT} tcp sport & 1 == 1 meta mark set {MARK}
        tcp dport >= {CPORT} tcp dport & 1 == 1 meta mark set {MARK}
    }}
}}
"""


def nft(ns: str, ruleset: str) -> None:
    r = subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "-f", "-"], input=ruleset, text=True, capture_output=True
    )
    if r.returncode != 0:
        raise RuntimeError(f"nft in {ns}: {r.stderr.strip()}")


def _spec(lab: Lab, me: str, peer: str, psk: str) -> TunnelSpec:
    return TunnelSpec(
        name="lane2",
        local=lab.ip(me),
        remote=lab.ip(peer),
        local_id=f"{me}-lane2",
        remote_id=f"{peer}-lane2",
        psk=psk,
        ike_proposals=policies.to_ike(None).proposals(),
        esp_proposals=policies.to_ipsec(None).proposals(),
        initiator=me < peer,
    )


def add_lane(lab: Lab, cfg: Config, workdir: Path) -> Config:
    """Turn the encrypted lab's expansion config into the 2-charon variant."""
    psk = secrets.token_hex(24)
    sessions: list[Any] = []
    charons = []
    for me, peer in (("A", "B"), ("B", "A")):
        gw = lab.cloud(me)["ns"]
        d = workdir / f"lane2-{me}"
        d.mkdir(parents=True, exist_ok=True)
        ch = LaneCharon(gw, d, lane=1)
        ch.start()
        charons.append(ch)
        session = strongswan.unix_session(ch.socket_path)
        spec = _spec(lab, me, peer, psk)
        conn = strongswan.conn_dict(spec, "kernel-libipsec")
        conn["lane2"].update(local_port=str(ch.port_nat_t), remote_port=str(ch.port_nat_t))
        session.load_conn(conn)
        owners = [spec.local_id, spec.remote_id]
        session.load_shared({"id": "lane2", "type": "IKE", "data": psk, "owners": owners})
        sessions.append(session)
        for mark in (charon_mod.FWMARK, ch.fwmark):  # both charons' own IKE/ESP packets
            nsmod.ip(gw, "rule", "add", "prio", "100", "fwmark", hex(mark), "lookup", "main")
        nsmod.ip(gw, "rule", "add", "prio", "110", "fwmark", str(MARK), "lookup", str(ch.table))
        nft(gw, lane_nft("bridge", "forward"))
    list(sessions[0].initiate({"child": "lane2", "ike": "lane2", "timeout": "-1"}))
    wait_for(lambda: all(_installed(s) for s in sessions), 30, "second charon's SA")
    for s in sessions:
        s.transport.close()
    gws = (lab.cloud("A")["ns"], lab.cloud("B")["ns"])
    cfg.key, cfg.label = "ic_enc_2charons", "intercloud encrypted, 2 charons per gateway"
    cfg.notes = "half the flows marked (nft, inner TCP port) and routed to a 2nd charon"
    cfg.ep.charon_pids = charon_pids(*gws)
    cfg.ep.cport = CPORT
    cfg.extra["sockets"] = {
        "charon1": str(Path(lab.cloud("A")["charon_dir"]) / "charon.vici"),
        "charon2": charons[0].socket_path,
    }
    return cfg


def _installed(session: Any) -> bool:
    return _child_bytes(session) is not None


def _child_bytes(session: Any) -> int | None:
    """Bytes in+out of the installed CHILD_SAs, None if there is none."""
    total = None
    for item in session.list_sas():
        for sa in item.values():
            for child in (sa.get("child-sas") or {}).values():
                if child.get("state") == b"INSTALLED":
                    total = (
                        (total or 0)
                        + int(child.get("bytes-in", 0))
                        + int(child.get("bytes-out", 0))
                    )
    return total


def lane_bytes(cfg: Config) -> dict[str, int]:
    """Bytes each lane's SAs carried (gateway A): proof that both charons encrypted."""
    out = {}
    for lane, path in cfg.extra["sockets"].items():
        session = strongswan.unix_session(path)
        try:
            out[lane] = _child_bytes(session) or 0
        finally:
            session.transport.close()
    return out
