"""`intercloud lab gateway ...`: the gateways of a lab brought up with --ha (two per cloud):
list them, fail the active one (kill, cut, db), restore a failed one."""

from __future__ import annotations

import json
from typing import Any

import click

from intercloud.lab.cli_common import name_option, open_lab
from intercloud.lab.gateways import HOW


@click.group()
def gateway() -> None:
    """A cloud's gateways in a lab with two per cloud (lab up --ha)."""


@gateway.command("list")
@name_option
@click.argument("cloud", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def gateway_list(lab_name: str, cloud: str | None, as_json: bool) -> None:
    """Each gateway of CLOUD (default: every cloud): its agent, role and the cloud's address."""
    lb = open_lab(lab_name)
    rows = [row for c in ([cloud] if cloud else lb.clouds) for row in lb.gateways(c)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        print_gateways(rows)


def print_gateways(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        holds = "holds the cloud's address" if r["holds_address"] else ""
        failed = f"(failed: {r['failed']})" if r["failed"] else ""
        click.echo(
            f"  gateway {r['cloud']}:{r['gateway']:<4} {r['namespace']:<14} {r['ip']:<14} "
            f"agent {r['agent']:<8} role {r['role'] or '-':<8} {holds} {failed}".rstrip()
        )


@gateway.command("fail")
@name_option
@click.argument("cloud")
@click.option(
    "--how",
    type=click.Choice(HOW),
    default="kill",
    show_default=True,
    help="kill: SIGKILL of the active gateway's agent and charons; cut: every link of its host "
    "down; db: only its database link cut.",
)
def gateway_fail(lab_name: str, cloud: str, how: str) -> None:
    """Fail CLOUD's active gateway HOW (restore it with `lab gateway restore`)."""
    failed = open_lab(lab_name).fail_gateway(cloud, how)
    click.echo(f"gateway {cloud.upper()}:{failed} failed ({how})")


@gateway.command("restore")
@name_option
@click.argument("cloud")
@click.argument("name", required=False)
def gateway_restore(lab_name: str, cloud: str, name: str | None) -> None:
    """Bring back gateway NAME of CLOUD (default: every failed one); it comes back standby."""
    lb = open_lab(lab_name)
    rows = lb.gateways(cloud)
    names = [name] if name else [r["gateway"] for r in rows if r["failed"]]
    if not names:
        click.echo(f"no failed gateway in cloud {cloud.upper()}")
    for n in names:
        done = lb.restore_gateway(cloud, n)
        click.echo(f"gateway {cloud.upper()}:{n}: {done}")
