"""Lanes in the benchmark: how many bytes each of an encrypted lab's charons carried, and the
what-if of a VPNaaS router split the same way.

The agent's own lanes are the product's (src/intercloud/drivers/ipsec/lanes.py): the lab starts
the charons, the agents steer VXLAN packets between them by source port. VPNaaS has no such
thing; `vpnaas.build(lanes=2)` gives each router a second charon (`Charon(lane=1)`) and splits
the iperf3 flows by client port with the rules below, to show what VPNaaS would gain from the
same idea.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from intercloud.drivers.ipsec import strongswan
from intercloud.lab.topology import Lab, lane_dir

CPORT = 40000  # iperf3 --cport base: data connections use CPORT + k*100 .. + N-1

MARK = 2


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


def child_bytes(session: Any) -> int | None:
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


def lane_bytes(lab: Lab, cloud: str = "A") -> dict[str, int]:
    """Bytes each lane's SAs carried on `cloud`'s gateway: proof that every charon encrypted."""
    out = {}
    base = Path(lab.cloud(cloud).charon_dir)
    for k in range(lab.state().lanes):
        session = strongswan.unix_session(str(lane_dir(base, k) / "charon.vici"))
        try:
            out[f"lane{k}"] = child_bytes(session) or 0
        finally:
            session.transport.close()
    return out
