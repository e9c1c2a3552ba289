"""Read views kept as JSON until the store's next write.

A GET of the expansions or links reads a few tables, builds the views and encodes them: 2-4 ms
of Python for every request, while the answer changes only when something is written (a user,
an admin, a peer or the reconciler). The store counts its writing commits
(`Store.generation`); a view is built once per generation and served from here otherwise.
Only views that come from the database alone are cached (not the networks, which the cloud
driver lists, nor /status, which carries the reconciler's counters).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from intercloud.store import Store

MAX_VIEWS = 4096  # distinct (view, project, object) keys kept; all dropped when reached


class ReadCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._views: dict[Hashable, tuple[int, bytes]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, build: Callable[[], Any]) -> Response:
        """The view `key` as a JSON response: cached if nothing was written since it was
        built, else built now (an error from `build` propagates, and nothing is kept)."""
        generation = self.store.generation  # read first: a write during build() outdates it
        with self._lock:
            hit = self._views.get(key)
        if hit is not None and hit[0] == generation:
            self.hits += 1
            return Response(hit[1], media_type="application/json")
        self.misses += 1
        body = JSONResponse(jsonable_encoder(build())).body
        with self._lock:
            if len(self._views) >= MAX_VIEWS:
                self._views.clear()
            self._views[key] = (generation, bytes(body))
        return Response(body, media_type="application/json")
