"""Rendering for the CLI: rich tables for lists, key/value tables for single objects, or raw
JSON with `--json`. Secret fields are never printed; cell text is never read as rich markup."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from intercloud.cli.context import CliContext

# (header, row key or callable(row) -> value) for print_table
Columns = list[tuple[str, Any]]

SECRET_FIELDS = frozenset({"key", "token", "admin_token", "secret", "password"})

STATE_STYLES = {
    "up": "green",
    "active": "green",
    "ok": "green",
    "pending": "yellow",
    "deleting": "yellow",
    "unknown": "yellow",
    "disabled": "dim",
    "down": "red",
    "error": "red",
}


def console() -> Console:
    """A console on the current stdout (so CliRunner captures it); wide when not a terminal,
    so scripts and logs get whole lines."""
    out = sys.stdout
    width = None
    if not out.isatty() and "COLUMNS" not in os.environ:
        width = 200
    return Console(file=out, width=width, highlight=False, soft_wrap=False)


def redact(data: Any) -> Any:
    """`data` without secret fields, at any depth."""
    if isinstance(data, Mapping):
        return {k: redact(v) for k, v in data.items() if str(k).lower() not in SECRET_FIELDS}
    if isinstance(data, list):
        return [redact(v) for v in data]
    return data


def fmt(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value) or "-"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={fmt(v)}" for k, v in value.items()) or "-"
    return str(value)


def styled(value: Any) -> Text:
    text = fmt(value)
    return Text(text, style=STATE_STYLES.get(text, ""))


def tunnel_cell(tunnel: Any) -> str:
    """What the probes through a tunnel port say: `rtt 0.42 ms, loss 0%`, `no answer yet`;
    `-` when it is not probed."""
    if not isinstance(tunnel, Mapping):
        return "-"
    loss = tunnel.get("loss")
    loss_text = f"loss {loss:.0%}" if isinstance(loss, int | float) else "loss ?"
    if tunnel.get("last_answer_at") is None:
        return f"no answer yet, {loss_text}"
    rtt = tunnel.get("rtt_ms")
    return f"rtt {rtt} ms, {loss_text}" if rtt is not None else loss_text


def peer_line(p: Mapping[str, Any]) -> str:
    """`B: active (vni 101) rtt 0.42 ms, loss 0%`, `C: error - peer C unreachable`."""
    line = f"{p.get('peer', '?')}: {p.get('status') or 'unknown'}"
    if p.get("vni") is not None:
        line += f" (vni {p['vni']})"
    if isinstance(p.get("tunnel"), Mapping):
        line += f" {tunnel_cell(p['tunnel'])}"
    if p.get("reason"):
        line += f" - {p['reason']}"
    return line


def peers_cell(peers: Iterable[Mapping[str, Any]] | None) -> Text:
    text = Text()
    for i, p in enumerate(peers or []):
        if i:
            text.append("\n")
        text.append(peer_line(p), style=STATE_STYLES.get(str(p.get("status")), ""))
    return text if text.plain else Text("-")


def link_state(link: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """(state, reason, checked_at) of a link, whether nested under `status` or flat."""
    status = link.get("status")
    if isinstance(status, Mapping):
        return status.get("state"), status.get("reason"), status.get("checked_at")
    return link.get("state", status), link.get("reason"), link.get("checked_at")


def ipsec_summary(link: Mapping[str, Any]) -> str:
    """One readable line of a link's IPsec state, e.g. 'ESTABLISHED tunnel NAT-T libipsec'."""
    if not link.get("encrypted"):
        return "off"
    status = link.get("status")
    ipsec = status.get("ipsec") if isinstance(status, Mapping) else None
    if not isinstance(ipsec, Mapping):
        return "?"
    parts = [str(ipsec.get("ike_state") or "DOWN")]
    children = ipsec.get("children") or []
    if children:
        child = children[0]
        parts.append(str(child.get("mode", "")).lower())
        if child.get("encap"):
            parts.append("UDP-encap")
        parts.append(f"{child.get('packets_in', 0)}/{child.get('packets_out', 0)} pkts")
    if ipsec.get("nat_detected"):
        parts.append("NAT")
    lanes = ipsec.get("lanes") or []
    if lanes:  # lane 0 is the link itself
        up = 1 + sum(1 for lane in lanes if isinstance(lane, Mapping) and lane.get("up"))
        parts.append(f"lanes {up}/{1 + len(lanes)} up")
    if ipsec.get("backend"):
        parts.append(f"({ipsec['backend']})")
    return " ".join(p for p in parts if p)


def print_json(data: Any) -> None:
    click.echo(json.dumps(redact(data), indent=2, default=str))


def print_table(
    rows: Sequence[Mapping[str, Any]] | None,
    columns: Columns,
    *,
    title: str | None = None,
    empty: str = "nothing found",
) -> None:
    """`columns`: (header, key or callable(row) -> str | Text)."""
    if not rows:
        click.echo(f"({empty})" if not title else f"{title}: ({empty})")
        return
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for header, _ in columns:
        table.add_column(header, overflow="fold")
    for row in rows:
        row = redact(row)
        cells = []
        for _, getter in columns:
            value = getter(row) if callable(getter) else row.get(getter)
            cells.append(value if isinstance(value, Text) else styled(value))
        table.add_row(*cells)
    console().print(table)


def print_object(
    obj: Mapping[str, Any] | None,
    *,
    title: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """A single object as a two-column key/value table; `extra` overrides rendered fields."""
    obj = redact(obj or {})
    table = Table(title=title, box=box.SIMPLE, show_header=False, title_justify="left")
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    extra = extra or {}
    for key, value in obj.items():
        if key in extra:
            value = extra[key]
        table.add_row(Text(str(key)), value if isinstance(value, Text) else styled(value))
    for key, value in extra.items():
        if key not in obj:
            table.add_row(Text(str(key)), value if isinstance(value, Text) else styled(value))
    console().print(table)


def done(message: str) -> None:
    click.echo(message)


def emit(state: CliContext, data: Any, render: Callable[[Any], None]) -> None:
    """Raw JSON with --json (nothing for an empty answer), else `render(data)`."""
    if state.json:
        if data is not None:
            print_json(data)
    else:
        render(data)


def show_list(state: CliContext, api_path: str, columns: Columns, empty: str) -> None:
    rows = state.client.get(api_path) or []
    emit(state, rows, lambda r: print_table(r, columns, empty=empty))


def deleted(state: CliContext, answer: Any, what: str) -> None:
    emit(state, answer, lambda _: done(f"deleted {what}"))
