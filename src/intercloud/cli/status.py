"""`intercloud status`: the agent's health (admin token) or your project's expansions
(project token)."""

from __future__ import annotations

from typing import Any

import click

from intercloud.cli import output, tables
from intercloud.cli.context import CliContext
from intercloud.errors import Forbidden


@click.command(short_help="Agent health, or your project's expansions.")
@click.pass_obj
def status(state: CliContext) -> None:
    """The agent's health (admin token) or your project's expansions (project token)."""
    client = state.client
    try:
        st = client.get("/v1/status")
    except Forbidden:
        expansions = client.get("/v1/expansions") or []
        if state.json:
            output.print_json({"expansions": expansions})
            return
        columns = [("PROJECT", "project"), *tables.EXPANSION_COLUMNS]
        output.print_table(expansions, columns, title="Expansions", empty="no expansions")
        return
    replicas = client.get("/v1/replicas") or []
    if state.json:
        output.print_json({**st, "replicas": st.get("replicas", replicas)})
        return
    _print_status(st, replicas)


def _print_status(st: dict[str, Any], replicas: list[dict[str, Any]]) -> None:
    output.print_object(
        {
            "agent": st.get("agent"),
            "version": st.get("version"),
            "dataplane": st.get("dataplane"),
            "ipsec": " ".join(str(v) for v in (st.get("ipsec") or {}).values() if v) or "-",
            "counts": st.get("counts"),
        },
        title="Agent",
    )
    output.print_object(st.get("reconciler") or {}, title="Reconciler")
    output.print_table(
        st.get("links") or [],
        [
            ("PEER", "peer"),
            ("STATE", lambda link: output.link_state(link)[0]),
            ("IPSEC", output.ipsec_summary),
            ("REASON", lambda link: output.link_state(link)[1]),
            ("CHECKED", lambda link: output.link_state(link)[2]),
        ],
        title="Links",
        empty="no links",
    )
    probes = st.get("probes") or {}
    off = "off: " + str(probes.get("reason") or "unknown") if not probes.get("available") else ""
    output.print_table(
        probes.get("peers") or [],
        tables.PROBE_COLUMNS,
        title="Probes through the tunnels",
        empty=off or "no tunnel ports",
    )
    output.print_table(replicas, tables.REPLICA_COLUMNS, title="Replicas", empty="no replicas")
    if st.get("ha"):
        _print_ha(st["ha"])


def _print_ha(ha: dict[str, Any]) -> None:
    """Gateway HA: this gateway's role, the cloud's active gateway, the last failover."""
    last = ha.get("last_failover") or {}
    output.print_object(
        {
            "gateway": ha.get("gateway"),
            "role": ha.get("role"),
            "since": ha.get("since"),
            "active": ha.get("active") or "-",
            "last failover": f"{last.get('at')} ({last.get('duration_ms')} ms)" if last else "-",
            "database": ha.get("database"),
        },
        title="High availability",
    )
    output.print_table(
        ha.get("gateways") or [],
        [("GATEWAY", "name"), ("ROLE", "role"), ("SEEN (s ago)", "seen_s_ago")],
        title="Gateways",
        empty="no gateway seen",
    )
