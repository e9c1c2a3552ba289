"""The read cache renders views as FastAPI's JSONResponse would (api/reads.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from intercloud.api.reads import _json


def _framework(view: object) -> bytes:
    return bytes(JSONResponse(jsonable_encoder(view)).body)


@pytest.mark.parametrize(
    "view",
    [
        [{"id": "e1", "peers": [{"peer": "B", "vni": 100, "rate_mbit": 1.5, "direct": []}],
          "paths": (), "status": "active", "reason": None, "name": "réseau ☃"}],
        {"a": {"b": [1, 2.25, True, None, "x"]}},
        [],
    ],
)  # fmt: skip
def test_plain_views_are_the_same_bytes_as_the_framework(view):
    assert _json(view) == _framework(view)


def test_other_values_go_through_the_framework_encoder():
    view = {"at": datetime(2026, 12, 5, tzinfo=UTC)}
    assert _json(view) == _framework(view) == b'{"at":"2026-12-05T00:00:00+00:00"}'
