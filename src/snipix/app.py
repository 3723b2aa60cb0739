"""The application factory and its lifespan: every client is built here and closed here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from importlib.metadata import version

import structlog
from fastapi import FastAPI
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from starlette.middleware.cors import CORSMiddleware

from snipix.api.answers import errors
from snipix.api.body_limit import BodyLimitMiddleware, allowances
from snipix.api.compat.router import router as compat_router
from snipix.api.envelope import FailureEnvelope
from snipix.api.errors import ErrorResponse, install_error_handlers
from snipix.api.hot_reads import HotReadsMiddleware
from snipix.api.openapi import openapi_with_documented_models
from snipix.api.rate_limit import RATE_LIMITED
from snipix.api.requests import RequestContextMiddleware
from snipix.api.routes.accounts import admin_router as accounts_admin_router
from snipix.api.routes.accounts import compat_router as accounts_compat_router
from snipix.api.routes.accounts import router as accounts_router
from snipix.api.routes.events import router as events_router
from snipix.api.routes.health import router as health_router
from snipix.api.routes.media import router as media_router
from snipix.api.routes.members import router as members_router
from snipix.api.routes.metrics import router as metrics_router
from snipix.api.routes.projects import admin_router
from snipix.api.routes.projects import router as projects_router
from snipix.api.routes.sessions import router as sessions_router
from snipix.api.routes.timelines import router as timeline_router
from snipix.api.routes.transcription import router as transcription_router
from snipix.api.routes.transcripts import router as transcript_router
from snipix.api.routes.transcripts import search_router as transcript_search_router
from snipix.api.security_headers import SecurityHeadersMiddleware
from snipix.api.web_app import WebAppMiddleware
from snipix.auth.token_verifier import TokenVerifier
from snipix.cache.journal import DatabaseJournal
from snipix.cache.local import LocalLayer
from snipix.cache.metrics import CacheMetrics
from snipix.cache.service import Cache
from snipix.cache.store import CacheStore, MemoryStore, RedisStore
from snipix.catalogue import MIGRATIONS
from snipix.db.client import Database, connect
from snipix.db.deferred import DeferredWrites
from snipix.db.indexes import ensure_catalogue
from snipix.db.leases import Lease
from snipix.db.migrations import Migration, MigrationRunner
from snipix.db.monitoring import Listener
from snipix.db.monitoring.commands import CommandMonitor
from snipix.db.monitoring.metrics import DatabaseMetrics
from snipix.db.monitoring.pool import PoolStats
from snipix.db.monitoring.topology import TopologyMonitor
from snipix.db.transactions import UnitOfWork
from snipix.events.bus import STOP_STREAMS, EventBus, EventMetrics, RedisEventBus
from snipix.observability.logging import configure_logging
from snipix.observability.metrics import Metrics
from snipix.projects.retention import LEASE_NAME, RetentionJob
from snipix.resources import Resources
from snipix.retry import RetryMetrics, RetryPolicy
from snipix.security.limiter import Limiter
from snipix.security.metrics import RateLimitMetrics
from snipix.services import Services, build_services
from snipix.settings import Settings
from snipix.transcription.service import transcription_runner

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
        # One retry policy for the service (snipix.retry), not redis-py's own on top of it.
        retry=Retry(NoBackoff(), 0),
    )
    return client


def _event_bus(settings: Settings, redis: Redis | None, metrics: Metrics) -> EventBus:
    """Live events across replicas through Redis pub/sub; in process without Redis (one
    replica). Chosen like the cache: by REDIS_URL."""
    if redis is None:
        return EventBus(EventMetrics(metrics))
    return RedisEventBus(
        redis,
        prefix=settings.cache_prefix,
        timeout_s=settings.redis_timeout_ms / 1000,
        metrics=EventMetrics(metrics),
    )


# Added to a journal entry's life beyond the cache TTL: clock skew between replicas.
JOURNAL_MARGIN_S = 60


def _cache(
    settings: Settings,
    redis: Redis | None,
    policy: RetryPolicy,
    metrics: CacheMetrics,
    topology: TopologyMonitor,
    db: Database,
) -> Cache:
    store: CacheStore | None = None
    local: LocalLayer | None = None
    journal: DatabaseJournal | None = None
    if not settings.cache_enabled:
        store = None
    elif redis is not None:
        store = RedisStore(redis)
        if settings.cache_local_max_bytes > 0 and settings.redis_url is not None:
            local = LocalLayer(
                settings.redis_url.get_secret_value(),
                settings.cache_prefix,
                timeout_s=settings.redis_timeout_ms / 1000,
                max_bytes=settings.cache_local_max_bytes,
                max_lag_s=settings.cache_local_max_lag_ms / 1000,
            )
        # Shared Redis, several replicas: what one cannot deliver to Redis goes through the
        # database. Kept until no entry filled before the write can still be fresh (the
        # longest jittered TTL) plus a margin for the replicas' clocks.
        longest_ttl_s = settings.cache_ttl_s * (1 + settings.cache_ttl_jitter)
        journal = DatabaseJournal(db, ttl=timedelta(seconds=longest_ttl_s + JOURNAL_MARGIN_S))
    elif settings.cache_memory_max_bytes > 0:
        # Single-replica mode: another replica could not see this process's invalidations.
        store = MemoryStore(settings.cache_memory_max_bytes)
    return Cache(
        store,
        prefix=settings.cache_prefix,
        ttl_s=settings.cache_ttl_s,
        jitter=settings.cache_ttl_jitter,
        stale_s=settings.cache_stale_s,
        policy=policy,
        metrics=metrics,
        database_up=lambda: topology.available,
        local=local,
        settle_s=settings.cache_local_max_lag_ms / 1000,
        journal=journal,
    )


# CORS: what a browser client may send and read beyond the safelisted headers.
CORS_REQUEST_HEADERS = [
    "Authorization",
    "Content-Type",
    "If-Match",
    "Idempotency-Key",
    "Last-Event-ID",
    "Prefer",
    "X-Change-Label",
    "X-Request-ID",
]
CORS_RESPONSE_HEADERS = ["ETag", "Location", "Retry-After", "X-Cache", "X-Request-ID"]

# Hardening: answers every rate-limited router can give besides its own.
LIMIT_RESPONSES = errors(
    say={
        413: "The body is over SNIPIX_MAX_BODY_BYTES (or the route's own limit).",
        429: "Too many writes or searches (SNIPIX_RATE_LIMIT_*); see Retry-After.",
    }
)


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[dict[str, object]]]


def _lifespan(
    settings: Settings,
    migrations: Sequence[Migration],
    listeners: Sequence[Listener],
    metrics: Metrics,
) -> Lifespan:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, object]]:
        started = time.perf_counter()
        # Before connecting: an unusable JWT key fails start-up without touching the database.
        tokens = TokenVerifier.from_settings(settings)
        # Each part declares its series in the app's registry; the listeners share one set.
        database = DatabaseMetrics(metrics)
        pool = PoolStats(settings.mongodb_max_pool_size, database)
        commands = CommandMonitor(database, slow_query_ms=settings.slow_query_ms)
        topology = TopologyMonitor(database)
        mongo = await connect(settings, listeners=[pool, commands, topology, *listeners])
        redis = _redis_client(settings)
        policy = RetryPolicy.from_settings(settings, RetryMetrics(metrics))
        db = mongo[settings.database_name]
        cache = _cache(settings, redis, policy, CacheMetrics(metrics), topology, db)
        # Rate limits: counted in Redis when configured, in process otherwise.
        limiter = Limiter(redis, prefix=settings.cache_prefix, metrics=RateLimitMetrics(metrics))
        stop = asyncio.Event()
        jobs: list[asyncio.Task[None]] = []
        services: Services | None = None
        events = _event_bus(settings, redis, metrics)
        try:
            await events.start()
            runner = MigrationRunner(db, migrations)
            # Migrations first: one may create a collection with options (the projects
            # validator) that creating its indexes first would have made impossible.
            if settings.migrate_on_start:
                await runner.migrate()
            await ensure_catalogue(db, settings)
            unit = await UnitOfWork.for_server(mongo)
            deferred = DeferredWrites()
            services = build_services(
                settings,
                db,
                unit,
                cache=cache,
                deferred=deferred,
                limiter=limiter,
                metrics=metrics,
                events=events,
            )
            resources = Resources(
                settings=settings,
                mongo=mongo,
                db=db,
                pool=pool,
                redis=redis,
                migrations=runner,
                tokens=tokens,
                unit=unit,
                services=services,
                metrics=metrics,
                cache=cache,
                deferred=deferred,
                retry=policy,
                limiter=limiter,
            )
            jobs.append(
                asyncio.create_task(resources.deferred.run_every(stop), name="deferred-writes")
            )
            if redis is not None and settings.cache_enabled:
                # What other replicas recorded while Redis was out of their reach is
                # delivered before the first request; nothing from Redis is served until then.
                await cache.poll_journal()
                jobs.append(asyncio.create_task(cache.run_recovery(stop), name="cache-recovery"))
            if redis is not None:
                jobs.append(
                    asyncio.create_task(limiter.run_recovery(stop), name="rate-limit-recovery")
                )
            if settings.retention_interval_s > 0:
                retention = RetentionJob(
                    services.projects,
                    Lease(db, LEASE_NAME, ttl=timedelta(seconds=settings.retention_interval_s)),
                    retention=timedelta(days=settings.retention_days),
                )
                interval = settings.retention_interval_s
                jobs.append(
                    asyncio.create_task(
                        retention.run_every(interval, stop, first_after_s=min(60, interval)),
                        name="retention",
                    )
                )
            transcriber = transcription_runner(services.transcription)
            if transcriber is not None:
                # Transcription jobs, queued here or by any replica, in worker processes.
                jobs.append(asyncio.create_task(transcriber.run(stop), name="transcription"))
            startup_s = time.perf_counter() - started
            metrics.startup_finished(startup_s)
            log.info(
                "service ready",
                database=settings.database_name,
                cache=cache.backend,
                rate_limits=limiter.backend,
                transactions=unit.transactional,
                startup_ms=round(startup_s * 1000, 1),
            )
            # STOP_STREAMS: `snipix serve` ends the event streams when it starts shutting
            # down, before it drains the open requests (cli/connections.py).
            yield {"resources": resources, STOP_STREAMS: events.stop_streams}
        finally:
            # Event streams end first: under uvicorn they did when shutdown began; under
            # any other server they would hold the drain open until its grace ran out.
            await events.close()
            # uvicorn has already drained in-flight requests (SNIPIX_SHUTDOWN_GRACE_S) here.
            stop.set()
            if jobs:
                await asyncio.gather(*jobs, return_exceptions=True)
            if services is not None:
                # Mail still waiting for its server is given up (each logged, no body).
                await services.outbox.close()
            cache.close()
            if redis is not None:
                await redis.aclose()
            await mongo.close()
            log.info("service stopped")

    return lifespan


def create_app(
    settings: Settings,
    *,
    migrations: Sequence[Migration] = MIGRATIONS,
    command_listeners: Sequence[Listener] = (),
) -> FastAPI:
    """Build the ASGI app; nothing connects until the lifespan starts.

    `command_listeners` are extra PyMongo monitors (the query-plan test records every
    command the service sends with one). Each app has its own metrics registry, served at
    `/metrics`; the lifespan has every part declare its series in it.
    """
    metrics = Metrics(version("snipix"))
    app = FastAPI(
        title="Snipix backend",
        version=version("snipix"),
        description="Durable projects, timelines and transcripts for the Snipix video editor.",
        lifespan=_lifespan(settings, migrations, command_listeners, metrics),
        # FastAPI's built-in OpenTelemetry bridge asks the OTel providers on every request
        # whether anyone listens; this service reports through Prometheus and its
        # structured logs (observability/), not OTel.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        responses=errors(
            say={422: "Invalid request.", 500: "Unexpected error.", 503: "Database unavailable."}
        ),
    )
    app.state.metrics = metrics
    # The error answers routes document refer to these models' schemas (api/openapi.py).
    app.openapi = openapi_with_documented_models(app, [ErrorResponse, FailureEnvelope])  # type: ignore[method-assign]
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(metrics_router)
    # Rate limits: writes and searches on every API route, per user (per address
    # without an identity); not health or metrics. A dependency, not middleware: the user
    # is known only after routing and authentication (api/rate_limit.py).
    for router in (
        projects_router,
        members_router,
        admin_router,
        timeline_router,
        sessions_router,
        transcription_router,
        transcript_router,
        transcript_search_router,
        accounts_router,
        accounts_admin_router,
        events_router,
    ):
        app.include_router(router, dependencies=[RATE_LIMITED], responses=LIMIT_RESPONSES)
    # The original web app's paths document their 413/429 in its envelope themselves
    # (api.answers.errors, compat=True). Compatibility routes: its /projects,
    # /timeline and /transcriptions.
    for router in (accounts_compat_router, media_router, compat_router):
        app.include_router(router, dependencies=[RATE_LIMITED])

    # Middleware, innermost first (each add_middleware wraps everything added before it):
    #   SecurityHeaders > CORS > RequestContext > WebApp > BodyLimit > HotReads > (routing)
    # - HotReads: cached project/timeline GETs answered before routing; anything
    #   it does not answer goes on unchanged (api/hot_reads.py).
    if settings.cache_enabled and settings.hot_reads:
        app.add_middleware(
            HotReadsMiddleware, routes=[*projects_router.routes, *timeline_router.routes]
        )
    # - BodyLimit inside RequestContext: its 413 has the request id, an access
    #   line and metrics; and it runs before routing, so a Content-Length over the limit
    #   is refused before any handler, dependency or rate limit.
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_body_bytes, allowances=allowances(settings)
    )
    # - WebApp: the web app's pages and assets from SNIPIX_WEB_APP_DIR, decided before
    #   routing by method, path, Accept and identity headers (api/web_app.py); inside
    #   RequestContext, so its answers are logged and counted like the API's.
    if settings.web_app_dir is not None:
        app.add_middleware(WebAppMiddleware, root=settings.web_app_dir, routes=app.router.routes)
    # - RequestContext: request id, access line, HTTP metrics, and the 500 for anything
    #   unhandled, around everything the app does.
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    # - CORS outside RequestContext, so every answer carries its grant (the 500
    #   RequestContext renders included) and preflights are answered before anything else
    #   runs (they are neither logged nor counted, as before).
    if settings.cors_allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_allowed_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_RESPONSE_HEADERS,
            # Identity travels in the Authorization header, never in cookies.
            allow_credentials=False,
            max_age=600,
        )
    # - SecurityHeaders outermost: every answer, preflights and 500s included.
    app.add_middleware(SecurityHeadersMiddleware)
    return app


def create_app_from_env() -> FastAPI:
    """uvicorn factory (`snipix.app:create_app_from_env`): settings from the environment.

    Used by `snipix serve`, whose workers each read the settings (and the embedded engine's
    address, passed as MONGODB_URI) from the environment the command prepared.
    """
    settings = Settings()
    # The one place a process configures logging for good (a worker serves until it
    # exits), so structlog may keep each module's logger once assembled.
    configure_logging(settings, cache_loggers=True)
    return create_app(settings)
