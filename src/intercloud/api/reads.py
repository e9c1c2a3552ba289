"""Read views kept as JSON until the store's next write.

A GET of the expansions or links reads a few tables, builds the views and encodes them: 2-4 ms
of Python for every request, while the answer changes only when something is written (a user,
an admin, a peer or the reconciler). The store counts its writing commits
(`Store.generation`); a view is built once per generation and served from here otherwise. A
view that shows the links names their table: the reconciler's writes of the links' checks on
every pass (`Store.session(shown="links")`) outdate it, and only it (`Store.generations`).
Only views that come from the database alone are cached (not the networks, which the cloud
driver lists, nor /status, which carries the reconciler's counters).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Hashable
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from intercloud.store import Store

MAX_VIEWS = 4096  # distinct (view, project, object) keys kept; all dropped when reached


class _Turn:
    """Who builds a view: the holder of `lock`; `waiting` counts those holding or awaiting it."""

    __slots__ = ("lock", "waiting")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiting = 0


class ReadCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        # key -> (the generations it was built at, its JSON, the tables it names)
        self._views: dict[Hashable, tuple[tuple[int, ...], bytes, tuple[str, ...]]] = {}
        self._lock = threading.Lock()
        self._building: dict[Hashable, _Turn] = {}  # keys being built now, and their waiters
        self.hits = 0
        self.misses = 0

    async def respond(
        self,
        key: Hashable,
        build: Callable[[], Any],
        extend: Callable[[Any], Any] | None = None,
        tables: tuple[str, ...] = (),
    ) -> Response:
        """For async handlers: a fresh view is answered on the event loop (no thread hop);
        building one (the database) happens in a worker thread. `extend`: what is added to the
        cached view on every answer (live figures that are not in the store: the probes').
        `tables`: those of Store.session(shown=...) that the view shows."""
        body = self._fresh(key)
        if body is None:
            response = await run_in_threadpool(self.get, key, build, tables)
            body = bytes(response.body)
        if extend is not None:
            body = bytes(JSONResponse(jsonable_encoder(extend(json.loads(body)))).body)
        return Response(body, media_type="application/json")

    def get(
        self, key: Hashable, build: Callable[[], Any], tables: tuple[str, ...] = ()
    ) -> Response:
        """The view `key` as a JSON response: cached if nothing was written since it was
        built, else built now (an error from `build` propagates, and nothing is kept). One
        request builds a view at a time; the others asking for it meanwhile wait for it
        (50 clients after a reconciler pass: one build, not 50)."""
        body = self._fresh(key)
        if body is None:
            with self._lock:
                turn = self._building.get(key)
                if turn is None:
                    turn = self._building[key] = _Turn()
                turn.waiting += 1
            try:
                with turn.lock:
                    body = self._fresh(key)
                    if body is None:
                        body = self._build(key, build, tables)
            finally:
                # the last one out takes the turn away, whether the build worked or raised
                # (a key per unknown id was kept forever: 20,000 GETs, +6 MB here)
                with self._lock:
                    turn.waiting -= 1
                    if turn.waiting == 0:
                        del self._building[key]
        return Response(body, media_type="application/json")

    def cached(self, key: Hashable) -> bytes | None:
        """The view's JSON if it is kept and nothing was written since (else None)."""
        return self._fresh(key)

    def _fresh(self, key: Hashable) -> bytes | None:
        with self._lock:
            hit = self._views.get(key)
        if hit is not None and hit[0] == self.store.generations(hit[2]):
            self.hits += 1
            return hit[1]
        return None

    def _build(self, key: Hashable, build: Callable[[], Any], tables: tuple[str, ...]) -> bytes:
        generations = self.store.generations(tables)  # first: a write during build() outdates it
        self.misses += 1
        body = _json(build())
        with self._lock:
            if len(self._views) >= MAX_VIEWS:
                self._views.clear()
            self._views[key] = (generations, body, tables)
        return body


def _json(view: Any) -> bytes:
    """The view as JSONResponse renders it. Views are plain JSON values (dicts, lists, text,
    numbers): dumped directly, they skip FastAPI's encoder walk, which was a third of a list
    of 3,333 expansions' build; anything else goes through that encoder."""
    try:
        text = json.dumps(
            view, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
        )
    except (TypeError, ValueError):
        return bytes(JSONResponse(jsonable_encoder(view)).body)
    return text.encode("utf-8")
