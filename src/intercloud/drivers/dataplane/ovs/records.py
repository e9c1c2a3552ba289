"""What the OVS driver was asked, recorded in br-cloud's external_ids so observe() returns it
exactly: `ic:bridge:<name>`, `ic:vxlan:<name>`, `ic:attach:<net_uuid>`, `ic:nofwd:<prefix>`
and `ic:meters:` (the meter ids installed), JSON values."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from intercloud.domain.hoststate import Attachment, Bridge, Vxlan

REC = "ic:"  # prefix of our record keys in br-cloud's external_ids
METERS = "meters:"


@dataclass
class Records:
    bridges: dict[str, Bridge] = field(default_factory=dict)
    vxlans: dict[str, Vxlan] = field(default_factory=dict)
    attachments: dict[str, Attachment] = field(default_factory=dict)
    no_forward: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # by prefix


def ours(external_ids: Mapping[str, str]) -> dict[str, str]:
    """Our records among a bridge's external_ids."""
    return {k: v for k, v in external_ids.items() if k.startswith(REC)}


def parse(records: Mapping[str, str]) -> Records:
    out = Records()
    for key, raw in records.items():
        kind, _, name = key[len(REC) :].partition(":")
        try:
            value = json.loads(raw)
            if kind == "bridge":
                out.bridges[name] = Bridge(name, mtu=value.get("mtu"))
            elif kind == "vxlan":
                out.vxlans[name] = Vxlan(**value)
            elif kind == "attach":
                out.attachments[name] = Attachment(name, value["master"])
            elif kind == "nofwd":
                out.no_forward[name] = {(a, b) for a, b in value}
        except (ValueError, TypeError, KeyError):
            continue  # not ours or damaged: the plan re-records it
    return out


def changes(**items: Any) -> tuple[dict[str, str], list[str]]:
    """Records `kind:name` to write (value) and keys to forget (None), e.g. changes(**{k: v})."""
    put = {REC + k: json.dumps(v, sort_keys=True) for k, v in items.items() if v is not None}
    drop = [REC + k for k, v in items.items() if v is None]
    return put, drop


def meters(records: Mapping[str, str]) -> dict[int, int]:
    """The meters recorded as installed: id -> kbit/s."""
    try:
        return {int(m): int(k) for m, k in json.loads(records.get(REC + METERS, "[]"))}
    except (ValueError, TypeError):
        return {}
