"""The FastAPI application: `create_app(settings)` wires settings, database, dispatcher, routers."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.audit.endpoints import router as audit_router
from api.errors import install_error_handler
from api.health.endpoints import router as health_router
from api.jobs.endpoints import router as jobs_router
from api.keys.endpoints import router as keys_router
from api.limits import RequestLimits
from api.models.endpoints import router as models_router
from api.models.serving import LoadedModels
from api.pages.endpoints import error_page
from api.pages.endpoints import router as pages_router
from api.ratelimit import RateLimiter
from api.reports.endpoints import router as reports_router
from api.requests.endpoints import router as requests_router
from api.validation import RejectNul
from domain.db import Database
from domain.dispatch import Dispatcher
from domain.settings import Settings, get_settings


def default_dispatcher(settings: Settings, database: Database) -> Dispatcher:
    """Celery with a broker; otherwise an in-process worker thread started with the app."""
    if settings.embedded:
        from worker.inprocess import InProcessWorker

        return InProcessWorker(settings, database)
    from worker.celery_app import CeleryDispatcher

    return CeleryDispatcher(settings)


def create_app(settings: Settings | None = None, dispatcher: Dispatcher | None = None) -> FastAPI:
    settings = settings or get_settings()
    database = Database(settings)
    dispatcher = dispatcher or default_dispatcher(settings, database)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        start = getattr(dispatcher, "start", None)
        if start:
            start()
        yield
        stop = getattr(dispatcher, "stop", None)
        if stop:
            stop()
        database.dispose()

    app = FastAPI(
        title="obliviate",
        summary="Deletion requests in, a new model version out, every step on the audit record.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings, app.state.database = settings, database
    app.state.dispatcher, app.state.models = dispatcher, LoadedModels()
    app.state.rate_limiter = RateLimiter(
        settings.rate_limit_per_minute, settings.broker_url, settings.broker_key_prefix
    )
    install_error_handler(app, error_page)
    app.add_middleware(RejectNul)
    app.add_middleware(RequestLimits, max_json_bytes=settings.max_json_bytes,
                       max_upload_bytes=settings.max_upload_bytes)  # fmt: skip
    for router in (
        health_router,
        requests_router,
        models_router,
        audit_router,
        jobs_router,
        keys_router,
        reports_router,
        pages_router,
    ):
        app.include_router(router)
    return app
