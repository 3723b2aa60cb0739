"""What the lifespan builds and every request may use, and the dependencies that hand it out.

Endpoints never import a client: they declare `DatabaseDep`, `SettingsDep` or
`ResourcesDep`, and tests swap nothing but the settings the app was created with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from snipix.auth.tokens import TokenVerifier
from snipix.cache.service import Cache
from snipix.db.client import Database, MongoClient
from snipix.db.deferred import DeferredWrites
from snipix.db.migrations import MigrationRunner
from snipix.db.monitoring import PoolStats
from snipix.db.transactions import UnitOfWork
from snipix.observability.metrics import Metrics
from snipix.retry import RetryPolicy
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
    redis: Redis | None = None
    # No caching unless the lifespan builds one (Redis or in-process, see app.py).
    cache: Cache = field(default_factory=Cache.disabled)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    deferred: DeferredWrites = field(default_factory=DeferredWrites)
    # The app's registry (the cache and retry policy record into it); a private one when
    # built outside an app, so recording never needs a None check.
    metrics: Metrics = field(default_factory=lambda: Metrics("unknown"))


def get_resources(request: Request) -> Resources:
    resources: Resources = request.state.resources
    return resources


def get_database(request: Request) -> Database:
    return get_resources(request).db


def get_settings(request: Request) -> Settings:
    return get_resources(request).settings


ResourcesDep = Annotated[Resources, Depends(get_resources)]
DatabaseDep = Annotated[Database, Depends(get_database)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_cache(request: Request) -> Cache:
    return get_resources(request).cache


CacheDep = Annotated[Cache, Depends(get_cache)]
