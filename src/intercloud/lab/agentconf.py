"""The agents' config files, written from `intercloud.config`'s dataclasses: the lab builds a
`Config` and `toml_text` serialises it, section by section from `dataclasses.fields` (so a new
or renamed setting needs nothing here). Every setting is written, defaults too: the file is
the agent's whole configuration (the lab's fake agents and the benchmark read it as well)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from intercloud.config import AgentSection, Config, IpsecSection
from intercloud.lab import pki

AGENT_PORT = 8700


def toml_value(value: Any) -> str:
    """A TOML value: strings and lists of them as JSON (a subset of TOML), bools as TOML's."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
    ):
        return json.dumps(value)
    raise TypeError(f"no TOML for {value!r}")


def _pairs(obj: Any) -> list[str]:
    return [f"{f.name} = {toml_value(getattr(obj, f.name))}" for f in dataclasses.fields(obj)]


def toml_text(cfg: Config) -> str:
    """`cfg` as the agent's TOML file: a table per section, an array of tables per list."""
    lines: list[str] = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, list):
            for item in value:
                lines += [f"[[{f.name}]]", *_pairs(item), ""]
        else:
            lines += [f"[{f.name}]", *_pairs(value), ""]
    return "\n".join(lines)


def write(path: Path, cfg: Config) -> None:
    """The config file, readable by root only (it holds tokens and passwords)."""
    pki.write_private(path, toml_text(cfg))


def agent_section(
    name: str,
    cloud_dir: Path,
    tls: dict[str, str],
    admin_token: str = "",
    reconcile_interval: float = 5,
) -> AgentSection:
    """A lab agent's [agent]: on every address of its namespace, its database in its cloud's
    directory, TLS from the cloud's own CA (`tls`: tls_cert, tls_key)."""
    return AgentSection(
        name=name,
        listen="0.0.0.0",
        port=AGENT_PORT,
        database=f"sqlite:///{cloud_dir / 'state.db'}",
        admin_token=admin_token,
        reconcile_interval=reconcile_interval,
        tls_cert=tls["tls_cert"],
        tls_key=tls["tls_key"],
    )


def ipsec_section(vici_socket: str | None, lane_sockets: Sequence[str] = ()) -> IpsecSection:
    """strongSwan through the gateway's charon (and those of its further lanes), or none."""
    if vici_socket is None:
        return IpsecSection(driver="none")
    return IpsecSection(driver="strongswan", vici_socket=vici_socket, lanes=list(lane_sockets))
