"""CLI groups for the user API (project token): network and expansion."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from intercloud.cli import output
from intercloud.cli.output import Columns
from intercloud.api_client import path
from intercloud.errors import IntercloudError, NotFound

if TYPE_CHECKING:
    from intercloud.cli.main import State

# Seconds between polls for --wait; tests make it tiny.
POLL_INTERVAL = 1.0

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


def _show_expansion(exp: dict[str, Any]) -> None:
    output.print_object(
        exp,
        extra={"peers": output.peers_cell(exp.get("peers")), "paths": paths_cell(exp.get("paths"))},
    )


@click.group()
def network() -> None:
    """Your project's networks (project token)."""


@network.command("list")
@click.pass_obj
def network_list(state: State) -> None:
    """List the networks your project may expand."""
    output.show_list(state, "/v1/networks", NETWORK_COLUMNS, "no networks")


# --- expansions -------------------------------------------------------------------------------

SETTLED = {"active", "error"}


def _summary(exp: dict[str, Any]) -> str:
    return "; ".join(output.peer_line(p) for p in exp.get("peers") or []) or "no peers"


def _poll(fetch: Callable[[], Any], current: Any, done: Callable[[Any], bool], wait: float):
    """Fetches until `done(answer)` or `wait` seconds pass; (last answer, done?)."""
    deadline = time.monotonic() + wait
    while True:
        if done(current):
            return current, True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return current, False
        time.sleep(min(POLL_INTERVAL, remaining))
        current = fetch()


@click.group()
def expansion() -> None:
    """Stretch your networks to peer clouds (project token)."""


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
    state: State,
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
        output.emit(state, exp, _show_expansion)
        return
    exp_path = path("v1", "expansions", exp["id"])

    def settled(e: dict[str, Any]) -> bool:
        return all(p.get("status") in SETTLED for p in e.get("peers") or [])

    exp, ok = _poll(lambda: state.client.get(exp_path), exp, settled, wait)
    output.emit(state, exp, _show_expansion)
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
def expansion_update(state: State, expansion_id: str, rate: float | None, no_rate: bool) -> None:
    """Change expansion ID's egress limit toward its peers."""
    if (rate is None) == (not no_rate):
        raise click.UsageError("give exactly one of --rate or --no-rate")
    answer = state.client.patch(path("v1", "expansions", expansion_id), {"rate_mbit": rate})
    output.emit(state, answer, _show_expansion)


@expansion.command("list")
@click.pass_obj
def expansion_list(state: State) -> None:
    """List your project's expansions."""
    output.show_list(state, "/v1/expansions", EXPANSION_COLUMNS, "no expansions")


@expansion.command("show")
@click.argument("expansion_id", metavar="ID")
@click.pass_obj
def expansion_show(state: State, expansion_id: str) -> None:
    """Show expansion ID with its per-peer status."""
    output.emit(state, state.client.get(path("v1", "expansions", expansion_id)), _show_expansion)


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
def expansion_delete(state: State, expansion_id: str, wait: float | None) -> None:
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

    last, ok = _poll(fetch, answer or {}, lambda e: e is None, wait)
    if not ok:
        raise IntercloudError(
            f"expansion {expansion_id} still there after {wait:g}s: {_summary(last)}"
        )
    if not state.json:
        output.done(f"deleted expansion {expansion_id}")


GROUPS = [network, expansion]
