"""Figures (value, baseline, ratio, target, verdict), the printed tables and the JSON file."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.measure import UDP_SIZES, first_fragmented


@dataclass
class Figure:
    id: str
    section: str  # dataplane | control | scale | api
    name: str
    value: float
    unit: str
    baseline_id: str
    baseline_name: str
    baseline_value: float
    ratio: float  # value / baseline_value
    better: str  # "higher" or "lower"
    target: str = ""  # e.g. "ratio >= 0.95", "value < 1"
    verdict: str = ""  # "pass" | "fail" | "" (no target)
    note: str = ""


def _check(target: str, value: float, ratio: float) -> str:
    if not target:
        return ""
    what, op, limit = target.split()
    x = ratio if what == "ratio" else value
    ok = {
        "<": x < float(limit),
        "<=": x <= float(limit),
        ">=": x >= float(limit),
        "==": x == float(limit),
    }[op]
    return "pass" if ok else "fail"


def _significant(x: float, digits: int = 5) -> float:
    """Rounded to significant digits, not decimals: a baseline of 0.00098 s keeps its precision
    (four decimals made it 0.001 and its ratio disagree with the figures by 2 %)."""
    return float(f"{x:.{digits}g}") if x == x else x


class Figures:
    def __init__(self) -> None:
        self.items: list[Figure] = []

    def add(
        self,
        id: str,
        section: str,
        name: str,
        value: float,
        unit: str,
        *,
        baseline: tuple[str, str, float],
        better: str = "higher",
        target: str = "",
        note: str = "",
    ) -> Figure:
        bid, bname, bvalue = baseline
        ratio = round(value / bvalue, 3) if bvalue else float("nan")
        fig = Figure(
            id,
            section,
            name,
            _significant(value),
            unit,
            bid,
            bname,
            _significant(bvalue),
            ratio,
            better,
            target,
            _check(target, value, ratio),
            note,
        )
        self.items.append(fig)
        return fig

    def get(self, id: str) -> Figure | None:
        return next((f for f in self.items if f.id == id), None)


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) // 1024} MB"
    except OSError:
        pass
    return {
        "cpu_model": model or platform.processor(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "memory": mem,
        "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()),
    }


def _fmt(x: float) -> str:
    if x != x:  # nan
        return "-"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}" if abs(x) < 1 else f"{x:.2f}"


def _verdict(v: str) -> str:
    return {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]"}.get(v, "")


def print_tables(result: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(width=160)
    m = result["machine"]
    console.print(
        f"[bold]intercloud benchmark[/] ({result['mode']} run, {result['duration_s']:.0f} s) - "
        f"{m['cpu_model']}, {m['cores']} cores, kernel {m['kernel']}, {m['memory']}, "
        f"load average at start {', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}"
    )
    figs = [Figure(**f) for f in result["figures"]]
    dp = result["details"].get("dataplane", {})
    t = Table(title="Data plane: TCP (iperf3 -P 10), RTT, fragmentation", show_lines=False)
    for col in (
        "configuration",
        "TCP Gb/s",
        "vs",
        "ratio",
        "target",
        "",
        "RTT ms",
        "RTT ratio",
        "frag. from",
        "host CPU",
        "charon CPU",
    ):
        t.add_column(col, justify="left" if col in ("configuration", "vs") else "right")
    for f in figs:
        if not f.id.startswith("tcp."):
            continue
        key = f.id.split(".", 1)[1]
        d = dp.get(key, {})
        rtt = next((r for r in figs if r.id == f"rtt.{key}"), None)
        cpu = d.get("cpu_during_tcp", {})
        frag = d.get("first_fragmented_size")
        t.add_row(
            d.get("label", key),
            _fmt(f.value),
            f.baseline_id.split(".", 1)[1],
            _fmt(f.ratio),
            f.target.replace("ratio ", ""),
            _verdict(f.verdict),
            _fmt(rtt.value) if rtt else "-",
            _fmt(rtt.ratio) if rtt else "-",
            f"{frag} B" if frag else ("-" if not d.get("wire_packets_per_datagram") else "none"),
            f"{cpu.get('host_busy_pct', '-')}%",
            f"{cpu['charon_pct_of_one_core']}% ({cpu['charon_threads_over_10pct']} thr)"
            if "charon_pct_of_one_core" in cpu
            else "",
        )
    console.print(t)
    u = Table(
        title="Data plane: UDP offered at the configuration's TCP rate: received Mb/s / loss % / "
        "underlay packets per datagram"
    )
    u.add_column("configuration")
    for size in UDP_SIZES:
        u.add_column(f"{size} B", justify="right")
    for key, d in dp.items():
        if not d.get("udp"):
            continue
        wire = {int(k): v for k, v in d.get("wire_packets_per_datagram", {}).items()}
        cells = []
        for size in UDP_SIZES:
            x = d["udp"].get(str(size))
            w = wire.get(size)
            cells.append(
                f"{x['mbps']:.0f} / {x['loss_pct']:.0f}% / {w if w is not None else '-'}"
                if x
                else "-"
            )
        u.add_row(d.get("label", key), *cells)
    console.print(u)
    c = Table(title="Control plane, scale and API")
    for col in ("figure", "value", "baseline", "baseline value", "ratio", "target", ""):
        c.add_column(col, justify="left" if col in ("figure", "baseline") else "right")
    for f in figs:
        if f.section == "dataplane":
            continue
        c.add_row(
            f.name,
            f"{_fmt(f.value)} {f.unit}",
            f.baseline_name,
            f"{_fmt(f.baseline_value)}",
            _fmt(f.ratio),
            f.target,
            _verdict(f.verdict),
        )
    console.print(c)
    _api_notes(figs, console)
    for err in result.get("errors", []):
        console.print(f"[red]error:[/] {err}")


def _api_notes(figs: list[Figure], console: Console) -> None:
    """How busy the machine was during each API measurement (a shared machine's noise)."""
    for f in figs:
        if f.section == "api" and f.note:
            console.print(f"{f.name}: {f.note}")


def write_json(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def figures_as_dicts(figs: Figures) -> list[dict[str, Any]]:
    return [asdict(f) for f in figs.items]


__all__ = ["Figure", "Figures", "first_fragmented", "machine", "print_tables", "write_json"]
