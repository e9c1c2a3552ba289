"""The functional tier: several whole agents in one process (real API, store and reconciler,
fake drivers), their federation calls carried over HTTP in memory by the harness's Router.
Every test here is marked `functional` (`pytest -m functional`); a warning is a failure here as
in tests/unit (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.functional.federation_harness import Router, peered_pair

FUNCTIONAL = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if FUNCTIONAL in Path(item.path).parents:
            item.add_marker(pytest.mark.functional)


@pytest.fixture
def pair(tmp_path):
    """Agents A and B in one process, peered (both projects); a test module may define its own."""
    with peered_pair(tmp_path, Router()) as agents:
        yield agents
