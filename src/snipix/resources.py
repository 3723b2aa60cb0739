"""What the lifespan builds and every request may use, and the dependencies that hand it out.

Routers never import a client or build a service: they take the services the lifespan
built (`Resources.services`) or declare `DatabaseDep`, `SettingsDep` or `ResourcesDep`,
and tests swap nothing but the settings the app was created with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from snipix.auth.token_verifier import TokenVerifier
from snipix.cache.service import Cache
from snipix.db.client import Database, MongoClient
from snipix.db.deferred import DeferredWrites
from snipix.db.migrations import MigrationRunner
from snipix.db.monitoring.pool import PoolStats
from snipix.db.transactions import UnitOfWork
from snipix.observability.metrics import Metrics
from snipix.retry import RetryPolicy
from snipix.security.limiter import Limiter
from snipix.services import Services
from snipix.settings import Settings


@dataclass
class Resources:
    settings: Settings
    mongo: MongoClient
    db: Database
    pool: PoolStats
    migrations: MigrationRunner
    tokens: TokenVerifier
    unit: UnitOfWork
    # Every service, built once by the lifespan (`snipix.services.build_services`).
    services: Services
    redis: Redis | None = None
    # No caching unless the lifespan builds one (Redis or in-process, see app.py).
    cache: Cache = field(default_factory=Cache.disabled)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    deferred: DeferredWrites = field(default_factory=DeferredWrites)
    # The app's registry (every part declares its series in it: the cache, the retry
    # policy, the limiter, the listeners); a private one when built outside an app, so
    # recording never needs a None check.
    metrics: Metrics = field(default_factory=lambda: Metrics("unknown"))
    # Rate limit counters: Redis-backed when the lifespan has Redis, else in process.
    limiter: Limiter = field(default_factory=Limiter.in_process)


def get_resources(request: Request) -> Resources:
    resources: Resources = request.state.resources
    return resources


def get_settings(request: Request) -> Settings:
    return get_resources(request).settings


# The dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in a
# worker thread, two thread hops per dependency per request, a large share of a cached
# GET's time in the app (docs/performance.md).


async def resources_dependency(request: Request) -> Resources:
    return get_resources(request)


async def database_dependency(request: Request) -> Database:
    return get_resources(request).db


async def settings_dependency(request: Request) -> Settings:
    return get_resources(request).settings


ResourcesDep = Annotated[Resources, Depends(resources_dependency)]
DatabaseDep = Annotated[Database, Depends(database_dependency)]
SettingsDep = Annotated[Settings, Depends(settings_dependency)]
