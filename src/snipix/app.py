"""The application factory and its lifespan: every client is built here and closed here."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib.metadata import version

import structlog
from fastapi import FastAPI
from redis.asyncio import Redis

from snipix.db.client import connect
from snipix.db.indexes import ensure_catalogue
from snipix.db.migrations import MIGRATIONS, Migration, MigrationRunner
from snipix.db.monitoring import PoolStats
from snipix.errors import ErrorResponse, install_error_handlers
from snipix.health.endpoints import router as health_router
from snipix.observability.logging import configure_logging
from snipix.observability.requests import RequestContextMiddleware
from snipix.resources import Resources
from snipix.settings import Settings

log = structlog.get_logger(__name__)


def _redis_client(settings: Settings) -> Redis | None:
    if settings.redis_url is None:
        return None
    timeout_s = settings.redis_timeout_ms / 1000
    # Bounded timeouts: a slow or absent Redis must cost a request milliseconds, not seconds.
    client: Redis = Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
    )
    return client


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[dict[str, Resources]]]


def _lifespan(settings: Settings, migrations: Sequence[Migration]) -> Lifespan:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Resources]]:
        started = time.perf_counter()
        pool = PoolStats(settings.mongodb_max_pool_size)
        mongo = await connect(settings, listeners=[pool])
        redis = _redis_client(settings)
        try:
            db = mongo[settings.database_name]
            await ensure_catalogue(db, settings)
            runner = MigrationRunner(db, migrations)
            if settings.migrate_on_start:
                await runner.migrate()
            resources = Resources(
                settings=settings,
                mongo=mongo,
                db=db,
                pool=pool,
                redis=redis,
                migrations=runner,
            )
            log.info(
                "service ready",
                database=settings.database_name,
                cache="redis" if redis is not None else "in-process",
                startup_ms=round((time.perf_counter() - started) * 1000, 1),
            )
            yield {"resources": resources}
        finally:
            # uvicorn has already drained in-flight requests (SNIPIX_SHUTDOWN_GRACE_S) here.
            if redis is not None:
                await redis.aclose()
            await mongo.close()
            log.info("service stopped")

    return lifespan


def create_app(settings: Settings, *, migrations: Sequence[Migration] = MIGRATIONS) -> FastAPI:
    """Build the ASGI app; nothing connects until the lifespan starts."""
    app = FastAPI(
        title="Snipix backend",
        version=version("snipix"),
        description="Durable projects, timelines and transcripts for the Snipix video editor.",
        lifespan=_lifespan(settings, migrations),
        responses={
            422: {"model": ErrorResponse, "description": "Invalid request."},
            500: {"model": ErrorResponse, "description": "Unexpected error."},
            503: {"model": ErrorResponse, "description": "Database unavailable."},
        },
    )
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health_router)
    return app


def create_app_from_env() -> FastAPI:
    """uvicorn factory (`snipix.app:create_app_from_env`): settings from the environment.

    Used by `snipix serve`, whose workers each read the settings (and the embedded engine's
    address, passed as MONGODB_URI) from the environment the command prepared.
    """
    settings = Settings()
    configure_logging(settings)
    return create_app(settings)
