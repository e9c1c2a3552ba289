"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from intercloud import __version__
from intercloud.api import (
    admin,
    diagnosis,
    errors,
    federation,
    federation_proxy,
    moves,
    openapi,
    proxy,
    scrape,
    topology,
    user,
)
from intercloud.api.answer_signing import AnswerSigning
from intercloud.api.context import AppContext
from intercloud.api.fast_reads import FastReads
from intercloud.api.limits import BodyLimit
from intercloud.api.reads import ReadCache
from intercloud.api.request_metrics import RequestMetrics
from intercloud.api.standby import StandbyRefusesWrites


class App(FastAPI):
    """FastAPI, with the busiest reads answered from the read cache before it (fast_reads)."""

    fast_reads: FastReads | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fast_reads is not None and await self.fast_reads.answer(scope, send):
            return
        await super().__call__(scope, receive, send)


def create_app(ctx: AppContext) -> App:
    app = App(
        title="intercloud",
        version=__version__,
        description="Stretch virtual networks at layer 2 between federated clouds.",
    )
    app.state.ctx = ctx
    app.state.reads = ReadCache(ctx.store)
    app.fast_reads = FastReads(ctx, app.state.reads)
    errors.install(app)
    app.include_router(admin.router)
    app.include_router(moves.router)
    app.include_router(moves.user_router)
    app.include_router(user.router)
    app.include_router(federation.router)
    app.include_router(federation_proxy.router)
    app.include_router(proxy.router)
    app.include_router(topology.router)
    app.include_router(diagnosis.router)
    app.include_router(scrape.router)
    app.add_middleware(AnswerSigning, agent_name=ctx.cfg.agent.name)
    app.add_middleware(StandbyRefusesWrites, ha=ctx.ha)  # a standby gateway serves reads only
    app.add_middleware(BodyLimit)  # before anything reads a body
    app.add_middleware(RequestMetrics, metrics=ctx.metrics)  # outermost: every answer timed
    openapi.install(app)
    return app
