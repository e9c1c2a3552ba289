"""`intercloud diagnose [PEER]`: walk the layers of one link (or of every link) on the agent
and name the first broken one with its advice. Exit code 0 when every layer is fine,
BROKEN_EXIT (3) when a layer is broken, 1 on an error (agent unreachable, unknown peer)."""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from intercloud.api_client import path
from intercloud.cli import output
from intercloud.cli.context import CliContext

BROKEN_EXIT = 3
MIN_TIMEOUT = 60.0  # seconds: a walk waits for the peer, charon and the tunnel probes
MARKS = {"ok": ("✓", "green"), "broken": ("✗", "red"), "skipped": ("·", "dim")}


@click.command(short_help="Walk a link's layers; name the first broken one.")
@click.argument("peer", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the whole walk as JSON.")
@click.pass_obj
def diagnose(state: CliContext, peer: str | None, as_json: bool) -> None:
    """Walk the layers of the link to PEER (every link without PEER): underlay, IPsec, the
    peer's API and certificate, clock skew, tunnel ports' flood entries, the tunnel probe and
    MTU. Exit code 0: every layer is fine; 3: a layer is broken; 1: an error."""
    state.timeout = max(state.timeout, MIN_TIMEOUT)
    if peer is not None:
        walks = [state.client.get(path("v1", "links", peer, "diagnosis"))]
    else:
        walks = list((state.client.get("/v1/diagnosis") or {}).get("links") or [])
    if as_json or state.json:
        output.print_json(walks[0] if peer is not None else {"links": walks})
    elif not walks:
        output.done("(no links)")
    for walk in walks if not (as_json or state.json) else []:
        _print_walk(walk)
    if any(w.get("broken") for w in walks):
        raise click.exceptions.Exit(BROKEN_EXIT)


def _mark(layer: dict[str, Any]) -> Text:
    mark, style = MARKS.get(str(layer.get("state")), ("?", ""))
    return Text(f"{mark} {layer.get('state')}", style=style)


def _print_walk(walk: dict[str, Any]) -> None:
    broken = walk.get("broken")
    verdict = f"broken at {broken}" if broken else "every layer fine"
    output.print_table(
        walk.get("layers") or [],
        [("LAYER", "layer"), ("STATE", _mark), ("DETAIL", "detail")],
        title=f"Link {walk.get('peer')}: {verdict}",
    )
    if broken:
        output.done(f"{broken}: {walk.get('advice') or '(no advice)'}")
