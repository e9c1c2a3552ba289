"""Text from outside (a peer's reason, a name in a header) made safe to store, log and show."""

from __future__ import annotations

MAX_REASON = 1024  # the reason columns (store/models.py)


def clean(value: object, limit: int = MAX_REASON) -> str:
    """`value` as one printable line of at most `limit` characters: control characters
    (newlines among them: they would forge log lines) become spaces, runs of spaces one."""
    raw = value if isinstance(value, str) else repr(value)
    line = " ".join("".join(c if c.isprintable() else " " for c in raw).split())
    return line if len(line) <= limit else line[: max(limit - 1, 0)] + "…"
