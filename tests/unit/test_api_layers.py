"""The API and the use cases import only downward (DESIGN.md, Layers): the API knows the
reconciler and the drivers by protocols (api/context.py), the service knows neither."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from intercloud.domain.ipsec_backend import LIBIPSEC, lanes_in_use

SRC = Path(__file__).resolve().parents[2] / "src" / "intercloud"
FORBIDDEN = {
    "api": ("intercloud.drivers", "intercloud.reconciler", "intercloud.cli", "intercloud.lab"),
    "service": (
        "intercloud.api",
        "intercloud.cli",
        "intercloud.lab",
        "intercloud.drivers",
        "intercloud.reconciler",
        "intercloud.agent",
    ),
}


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_downward(layer: str) -> None:
    upward = [
        f"{path.relative_to(SRC)}: {name}"
        for path in sorted((SRC / layer).rglob("*.py"))
        for name in _imports(path)
        if name.startswith(FORBIDDEN[layer])
    ]
    assert upward == []


def test_lanes_in_use() -> None:
    assert lanes_in_use(3, LIBIPSEC) == 3
    assert lanes_in_use(3, "kernel") == 1  # kernel ESP already encrypts on the sending CPU
    assert lanes_in_use(3, None) == 1  # no charon said yet
