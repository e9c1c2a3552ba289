"""The user API's commands (project token) that differ per resource: `expansion create`,
`update` and `delete` with their --wait (the rest: `cli.resources`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

from intercloud.api_client import path
from intercloud.cli import output
from intercloud.cli.context import CliContext
from intercloud.cli.resources import EXPANSIONS, NETWORKS, make_group
from intercloud.cli.tables import show_expansion
from intercloud.errors import IntercloudError, NotFound

SETTLED = {"active", "error"}


def _summary(exp: dict[str, Any]) -> str:
    return "; ".join(output.peer_line(p) for p in exp.get("peers") or []) or "no peers"


def _poll(
    state: CliContext,
    fetch: Callable[[], Any],
    current: Any,
    done: Callable[[Any], bool],
    wait: float,
) -> tuple[Any, bool]:
    """Fetches every `state.poll_interval` seconds until `done(answer)` or `wait` seconds pass;
    (last answer, done?)."""
    deadline = time.monotonic() + wait
    while True:
        if done(current):
            return current, True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return current, False
        time.sleep(min(state.poll_interval, remaining))
        current = fetch()


expansion = make_group(EXPANSIONS)


@expansion.command("create")
@click.argument("network_name", metavar="NETWORK")
@click.option("--peer", "peers", multiple=True, required=True, help="Peer cloud; repeatable.")
@click.option("--vni", type=int, default=None, help="Ask for this VNI (default: first free).")
@click.option(
    "--rate", type=float, default=None, metavar="MBIT", help="Egress limit to each peer, Mbit/s."
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Wait until every peer is active or in error (exit 1 on error or time-out).",
)
@click.pass_obj
def expansion_create(
    state: CliContext,
    network_name: str,
    peers: tuple[str, ...],
    vni: int | None,
    rate: float | None,
    wait: float | None,
) -> None:
    """Expand NETWORK to the given peers."""
    body: dict[str, Any] = {"network": network_name, "peers": list(peers)}
    if vni is not None:
        body["vni"] = vni
    if rate is not None:
        body["rate_mbit"] = rate
    exp = state.client.post("/v1/expansions", body)
    if wait is None:
        output.emit(state, exp, show_expansion)
        return
    exp_path = path("v1", "expansions", exp["id"])

    def settled(e: dict[str, Any]) -> bool:
        return all(p.get("status") in SETTLED for p in e.get("peers") or [])

    exp, ok = _poll(state, lambda: state.client.get(exp_path), exp, settled, wait)
    output.emit(state, exp, show_expansion)
    if not ok:
        raise IntercloudError(f"expansion {exp['id']} not ready after {wait:g}s: {_summary(exp)}")
    failed = [p for p in exp.get("peers") or [] if p.get("status") == "error"]
    if failed:
        lines = "; ".join(output.peer_line(p) for p in failed)
        raise IntercloudError(f"expansion {exp['id']} failed: {lines}")


@expansion.command("update")
@click.argument("expansion_id", metavar="ID")
@click.option("--rate", type=float, default=None, metavar="MBIT", help="New egress limit, Mbit/s.")
@click.option("--no-rate", is_flag=True, help="Remove the expansion's own limit.")
@click.pass_obj
def expansion_update(
    state: CliContext, expansion_id: str, rate: float | None, no_rate: bool
) -> None:
    """Change expansion ID's egress limit toward its peers."""
    if (rate is None) == (not no_rate):
        raise click.UsageError("give exactly one of --rate or --no-rate")
    answer = state.client.patch(path("v1", "expansions", expansion_id), {"rate_mbit": rate})
    output.emit(state, answer, show_expansion)


@expansion.command("delete")
@click.argument("expansion_id", metavar="ID")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Wait until both sides have removed it (exit 1 on time-out).",
)
@click.pass_obj
def expansion_delete(state: CliContext, expansion_id: str, wait: float | None) -> None:
    """Remove expansion ID from every peer."""
    exp_path = path("v1", "expansions", expansion_id)
    answer = state.client.delete(exp_path)
    if wait is None:
        output.emit(state, answer, lambda _: output.done(f"deleting expansion {expansion_id}"))
        return

    def fetch() -> Any:
        try:
            return state.client.get(exp_path)
        except NotFound:
            return None

    last, ok = _poll(state, fetch, answer or {}, lambda e: e is None, wait)
    if not ok:
        raise IntercloudError(
            f"expansion {expansion_id} still there after {wait:g}s: {_summary(last)}"
        )
    if not state.json:
        output.done(f"deleted expansion {expansion_id}")


GROUPS = [make_group(NETWORKS), expansion]
