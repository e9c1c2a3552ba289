"""The unit tier: a warning is a failure (not yet in tests/integration: the lab's agents
outlive the Popen objects that started them by design, and each such object warns that its
process still runs when it is collected); and its shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.federation_harness import Router, make_agent, peer

UNIT = Path(__file__).parent
STRICT = pytest.mark.filterwarnings(
    "error",  # applied first: the filter after it takes precedence for its own warning
    "ignore:Using `httpx` with `starlette.testclient` is deprecated:UserWarning",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if UNIT in Path(item.path).parents:
            item.add_marker(STRICT)


@pytest.fixture
def pair(tmp_path):
    """Agents A and B in one process, peered (both projects); a test module may define its own."""
    router = Router()
    a = make_agent(tmp_path, router, "A", 1)
    b = make_agent(tmp_path, router, "B", 2)
    peer(a, b)
    yield a, b
    for agent in (a, b):
        agent.ctx.store.dispose()
