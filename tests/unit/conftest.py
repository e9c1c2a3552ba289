"""The unit tier: a warning is a failure. (Not yet in tests/integration: the lab's agents
outlive the Popen objects that started them by design, and each such object warns that its
process still runs when it is collected.)"""

from __future__ import annotations

from pathlib import Path

import pytest

UNIT = Path(__file__).parent
STRICT = pytest.mark.filterwarnings(
    "error",  # applied first: the filter after it takes precedence for its own warning
    "ignore:Using `httpx` with `starlette.testclient` is deprecated:UserWarning",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if UNIT in Path(item.path).parents:
            item.add_marker(STRICT)
