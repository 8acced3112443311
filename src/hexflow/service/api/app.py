"""create_app: the FastAPI application of ``hexflow server``.

The Service (database, keys, run manager) is built when the app starts (its lifespan) and
closed when it stops; building the app alone touches nothing (the OpenAPI test does so).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

import hexflow
from hexflow.service.api import (
    audit,
    datasets,
    errors,
    functions,
    oauth,
    queue,
    root,
    runs,
    services,
    sfapi_account,
    sfapi_compute,
    sfapi_files,
    sfapi_public,
    sfapi_storage,
    sites,
    storage,
    streams,
    tasks,
    transfers,
    triggers,
)
from hexflow.service.api.hotpath import HotPaths
from hexflow.service.api.metrics import Metrics, MetricsMiddleware
from hexflow.service.config import ServiceConfig
from hexflow.service.core import Service

# Routes that answer without a token; every other route requires one.
PUBLIC_PATHS = (
    frozenset(
        {
            "/",
            "/metrics",
            "/oauth2/token",
            "/docs",
            "/docs/oauth2-redirect",
            "/redoc",
            "/openapi.json",
        }
    )
    | sfapi_public.PUBLIC
    | {triggers.HOOK_PATH}  # signed with the trigger's secret instead (docs/events.md)
    | {functions.UPLOAD_PATH}  # a pre-signed upload: its token instead (docs/functions.md)
)  # SFAPI's status and meta routes are public, as at NERSC


def create_app(config: ServiceConfig) -> FastAPI:
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = await run_in_threadpool(Service, config)
        app.state.service = svc
        metrics.watch_runs(lambda: svc.manager.active, lambda: svc.manager.queued)
        metrics.watch_group_commit(svc.db.writer)
        try:
            await run_in_threadpool(svc.start)
            await svc.events.start()
            if config.freeze_gc:
                gc.collect()
                gc.freeze()
            yield
        finally:
            if svc.events.started:
                await svc.events.stop()
            await run_in_threadpool(svc.close)

    app = FastAPI(
        title="hexflow",
        version=hexflow.__version__,
        description="Workflow service for HPC facilities: submit and follow workflow runs. "
        "Authenticate with `Authorization: Bearer <token>` (an API token from `hexflow admin "
        "token create`, or an access token from POST /oauth2/token).",
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(HotPaths, metrics=metrics)  # outside: the hot routes skip the rest
    errors.install(app)
    app.include_router(root.router)
    app.include_router(oauth.router)
    app.include_router(runs.router)
    app.include_router(streams.router)
    app.include_router(tasks.router)
    app.include_router(sites.router)
    app.include_router(services.router)
    app.include_router(queue.router)
    app.include_router(audit.router)
    app.include_router(functions.router)
    app.include_router(functions.uploads)
    app.include_router(triggers.router)
    app.include_router(triggers.hooks)
    for data in (storage, transfers, datasets):  # docs/data.md
        app.include_router(data.router)
    for facade in (sfapi_public, sfapi_compute, sfapi_files, sfapi_account, sfapi_storage):
        app.include_router(facade.router)
    return app
