"""How each resource is shown: the columns of its list and, where a plain key/value table is
not enough, its one-object view."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from intercloud.cli import output
from intercloud.cli.output import Columns

PEER_COLUMNS: Columns = [
    ("NAME", "name"),
    ("FEDERATION URL", "federation_url"),
    ("UNDERLAY", "underlay_endpoint"),
    ("PINNED CA", lambda r: "yes" if r.get("tls_ca_sha256") else "-"),
    ("CREATED", "created_at"),
]
LINK_COLUMNS: Columns = [
    ("PEER", "peer"),
    ("LOCAL", "local_endpoint"),
    ("REMOTE", "remote_endpoint"),
    ("TYPE", "tunnel_type"),
    ("MTU", "mtu"),
    ("ENABLED", "enabled"),
    ("STATE", lambda r: output.link_state(r)[0]),
    ("IPSEC", output.ipsec_summary),
    ("VM MTU", lambda r: (r.get("mtu_budget") or {}).get("vm_mtu")),
    ("REASON", lambda r: output.link_state(r)[1]),
]
AGREEMENT_COLUMNS: Columns = [
    ("PEER", "peer"),
    ("PROJECTS", "projects"),
    ("PEER PROJECTS", "peer_projects"),
    ("MAX EXPANSIONS", "max_expansions_per_project"),
]
REPLICA_COLUMNS: Columns = [
    ("ID", "id"),
    ("PEER", "peer"),
    ("PROJECT", "project"),
    ("ORIGIN PROJECT", "origin_project"),
    ("NETWORK", "network"),
    ("CIDR", "cidr"),
    ("VNI", "vni"),
    ("BRIDGE", "bridge"),
    ("STATUS", "status"),
    ("PROBES", lambda r: output.tunnel_cell(r.get("tunnel"))),
    ("REASON", "reason"),
]
PROBE_COLUMNS: Columns = [
    ("PEER", "peer"),
    ("TUNNELS", "tunnels"),
    ("ANSWERING", "answering"),
    ("SILENT", "silent"),
    ("UNANSWERED", "unanswered"),
    ("RTT MS", lambda r: "-" if r.get("rtt_ms") is None else r["rtt_ms"]),
    ("LOSS", lambda r: f"{r['loss']:.0%}" if isinstance(r.get("loss"), int | float) else "-"),
]
NETWORK_COLUMNS: Columns = [
    ("NAME", "name"),
    ("PROJECT", "project"),
    ("CIDR", "cidr"),
    ("EXPANSION", "expansion"),
]
EXPANSION_COLUMNS: Columns = [
    ("ID", "id"),
    ("NETWORK", "network"),
    ("CIDR", "cidr"),
    ("STATUS", "status"),
    ("PEERS", lambda r: output.peers_cell(r.get("peers"))),
]
IKE_COLUMNS: Columns = [
    ("NAME", "name"),
    ("VERSION", "version"),
    ("PROPOSALS", "proposals"),
    ("LIFETIME", "lifetime"),
]
IPSEC_COLUMNS: Columns = [
    ("NAME", "name"),
    ("PROPOSALS", "proposals"),
    ("MODE", "mode"),
    ("LIFETIME", "lifetime"),
]


def show_link(link: dict[str, Any]) -> None:
    state, reason, checked = output.link_state(link)
    line = output.fmt(state) + (f" - {reason}" if reason else "")
    if checked:
        line += f" (checked {checked})"
    style = output.STATE_STYLES.get(output.fmt(state), "")
    output.print_object(link, extra={"status": Text(line, style=style)})


def paths_cell(paths: list[dict[str, Any]] | None) -> str:
    """One line per pair of clouds: `A-B direct`, `B-C via A`, `C-D via B, A`, `A-E unreachable`."""
    lines = []
    for p in paths or []:
        pair = "-".join(p.get("between", []))
        if p.get("state") == "unreachable":
            lines.append(f"{pair} unreachable")
        elif p.get("via"):
            lines.append(f"{pair} via {', '.join(p['via'])}")
        else:
            lines.append(f"{pair} direct")
    return "\n".join(lines) or "-"


def show_expansion(exp: dict[str, Any]) -> None:
    output.print_object(
        exp,
        extra={"peers": output.peers_cell(exp.get("peers")), "paths": paths_cell(exp.get("paths"))},
    )
