"""OpenStack mode encrypted next to standalone mode encrypted, in the same run:
`python -m bench.openstack [--short]` (root; from the repository root; ~4 min).

Two labs of two clouds each, both with encrypted links and the same number of charons:
- `ic_enc_standalone`: VMs on Linux tenant bridges, the Linux data plane;
- `ic_enc_openstack`: real Keystone + Neutron + Open vSwitch per cloud, VMs as Neutron ports on
  br-int (OVS userspace datapath), the ovs data plane with kernel tunnels (br-cloud, a veth per
  network into kernel VXLAN, charon's IPsec).
TCP (iperf3, 10 streams) from a1 to b1 in turns, the median of the reps; RTT. The figure is
the OpenStack one beside its standalone baseline and the ratio."""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import measure
from bench.dataplane import charon_pids, expand, wait_for
from bench.measure import Endpoint, Mode
from intercloud.lab.openstack.lab import OpenStackLab
from intercloud.lab.topology import DEFAULT_LANES, Lab

RESULTS = Path(__file__).resolve().parent / "results"


def standalone(prefix: str, workdir: Path, lanes: int, labs: list[Lab]) -> Endpoint:
    """The standalone lab (appended to `labs` before it is built, so that `run` takes down
    a half-built one too) and its endpoint."""
    lab = Lab(prefix + "s", state_dir=workdir / "standalone")
    labs.append(lab)
    lab.up(2, encrypt=True, lanes=lanes)
    lab.peer("A", "B")
    expand(lab, "A", "p1", "net1", ["B"])
    lab.add_vm("A", "a1", "10.10.0.1/24", network="net1")
    lab.add_vm("B", "b1", "10.10.0.2/24", replica_of="A/net1")
    gws = (lab.cloud("A").ns, lab.cloud("B").ns)
    ep = Endpoint(
        lab.namespace("A/a1"), lab.namespace("B/b1"), "10.10.0.2", gws[0], "eth0", charon_pids(*gws)
    )
    return ep


def openstack(prefix: str, workdir: Path, lanes: int, labs: list[Lab]) -> Endpoint:
    """The OpenStack lab (appended to `labs` as `standalone` does) and its endpoint."""
    lab = OpenStackLab(prefix + "o", state_dir=workdir / "openstack")
    labs.append(lab)
    lab.up(2, encrypt=True, lanes=lanes)
    lab.peer("A", "B")
    lab.add_vm("A", "a1", network="net1")
    expand(lab, "A", "p1", "net1", ["B"])
    b1 = lab.add_vm("B", "b1", replica_of="A/net1")
    ip = b1.ip.split("/")[0]
    gws = (lab.cloud("A").ns, lab.cloud("B").ns)
    ep = Endpoint(lab.namespace("A/a1"), lab.namespace("B/b1"), ip, gws[0], "eth0")
    ep.charon_pids = charon_pids(*gws)
    wait_for(lambda: measure.ping_ok(ep.client_ns, ip, count=1, wait=2.0), 60, "a1 -> b1 ping")
    return ep


def run(
    mode: Mode,
    lanes: int,
    prefix: str | None = None,
    keep: list[Lab] | None = None,
    workdir: Path | None = None,
) -> dict:
    """Both labs (named `prefix` + s / o, in `workdir`, default a temporary one), the TCP reps
    in turns, RTT; the labs go after, but for the OpenStack one when the caller `keep`s it
    (appended there once measured: bench/migration.py moves VMs in it then)."""
    prefix = prefix or "bo" + secrets.token_hex(2)
    own_workdir = workdir is None
    workdir = workdir or Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
    labs: list[Lab] = []
    handed: list[Lab] = []  # to the caller, measured
    out: dict = {"lanes": lanes, "tcp_seconds": mode.tcp_seconds, "reps": mode.tcp_reps}
    servers = []
    try:
        configs = {}
        for key, build in (("ic_enc_standalone", standalone), ("ic_enc_openstack", openstack)):
            print(f"building {key} ...", file=sys.stderr, flush=True)
            configs[key] = build(prefix, workdir, lanes, labs)
        runs: dict[str, list[float]] = {k: [] for k in configs}
        for ep in configs.values():
            servers.append(measure.Iperf3Server(ep.server_ns))
        for rep in range(mode.tcp_reps):
            for key, ep in configs.items():
                gbps = measure.tcp(ep, mode)
                runs[key].append(round(gbps, 4))
                print(f"TCP rep {rep + 1} {key}: {gbps:.3f} Gb/s", file=sys.stderr, flush=True)
        for key, ep in configs.items():
            out[key] = {
                "tcp_gbps": statistics.median(runs[key]),
                "tcp_runs_gbps": runs[key],
                "rtt_ms": measure.rtt_ms(ep.client_ns, ep.server_ip, mode.pings),
            }
        base = out["ic_enc_standalone"]["tcp_gbps"]
        out["ratio_tcp"] = round(out["ic_enc_openstack"]["tcp_gbps"] / base, 3) if base else None
        if keep is not None:
            handed = [lab for lab in labs if isinstance(lab, OpenStackLab)]
            keep.extend(handed)
    finally:
        for server in servers:
            server.stop()
        for lab in labs:
            if lab not in handed:
                lab.down()
        if own_workdir and not handed:  # the labs' own directories went with them
            shutil.rmtree(workdir, ignore_errors=True)
    return out


def section(bench: Any) -> None:
    """`python -m bench`'s openstack section (bench/run.py `Run`): the OpenStack expansion,
    encrypted, beside the standalone one, with the figures it adds."""
    kept: list[Lab] = []
    out = run(
        bench.mode, DEFAULT_LANES, bench.prefix + "x", keep=kept, workdir=bench.workdir / "os"
    )
    bench.labs.extend(kept)  # taken down at the end of the run, if not before
    bench.openstack_lab = kept[0] if kept else None  # the migration section's moves
    bench.details["openstack"] = out
    s, o = out["ic_enc_standalone"], out["ic_enc_openstack"]
    base = "standalone, encrypted (same run, same charons)"
    bench.figs.add(
        "openstack.tcp",
        "openstack",
        "OpenStack expansion encrypted, TCP -P 10 (br-int, br-cloud, kernel VXLAN)",
        o["tcp_gbps"],
        "Gb/s",
        baseline=("openstack.standalone.tcp", base, s["tcp_gbps"]),
        note=f"reps {o['tcp_runs_gbps']} vs {s['tcp_runs_gbps']}",
    )
    bench.figs.add(
        "openstack.rtt",
        "openstack",
        "OpenStack expansion encrypted, RTT",
        o["rtt_ms"],
        "ms",
        baseline=("openstack.standalone.rtt", base, s["rtt_ms"]),
        better="lower",
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.openstack", description=__doc__)
    p.add_argument("--short", action="store_true", help="one 2 s rep (a smoke run)")
    p.add_argument("--lanes", type=int, default=DEFAULT_LANES, help="charons per gateway")
    args = p.parse_args(argv)
    out = run(Mode.make(args.short), args.lanes)
    s, o = out["ic_enc_standalone"], out["ic_enc_openstack"]
    print(f"{'configuration':<40} {'TCP Gb/s':>9} {'RTT ms':>8}")
    print(f"{'standalone, encrypted (baseline)':<40} {s['tcp_gbps']:>9.3f} {s['rtt_ms']:>8.3f}")
    print(f"{'OpenStack (kernel VXLAN), encrypted':<40} {o['tcp_gbps']:>9.3f} {o['rtt_ms']:>8.3f}")
    print(f"ratio OpenStack / standalone (TCP): {out['ratio_tcp']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "openstack.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
