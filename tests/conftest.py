"""Test harness: one real database engine per session, a database of its own per test.

Each test's database has the schema a start-up leaves and no documents; a worker reuses
its databases, cleared, when a test left the schema as it was (tests/databases.py).
`empty_database_name` is one nothing has touched.

The embedded engine runs as its own process (started by the same launcher `snipix serve`
uses) and every test talks to it over the MongoDB wire protocol with PyMongo. Set
`SNIPIX_TEST_MONGODB_URI` to run the same tests against a real MongoDB instead. Tests that
need Redis get a real `redis-server` on a free port.

Every app a test builds from the `settings` fixture caches through a real redis-server (one
per session, a key prefix per test). `SNIPIX_TEST_CACHE` changes that for a whole run:
`memory` (no REDIS_URL: the in-process cache) or `redis-down` (REDIS_URL points at a port
where nothing listens: every cache call fails, and the API must behave exactly the same).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI
from pymongo import MongoClient

from snipix.app import create_app
from snipix.db.client import Database, connected
from snipix.db.launcher import start_engine_process
from snipix.settings import Settings
from tests.databases import DatabasePool, new_name
from tests.support import (
    SETTING_PREFIXES,
    RedisServer,
    clean_env,
    free_port,
    running_app,
    sync_mongo_client,
)

# The `process` marker's check (tests/processes.py).
pytest_plugins = ["tests.processes"]

TEST_URI_VARIABLE = "SNIPIX_TEST_MONGODB_URI"
TEST_CACHE_VARIABLE = "SNIPIX_TEST_CACHE"
# Read once at import: the autouse fixture below removes every SNIPIX_ variable per test.
TEST_CACHE = os.environ.get(TEST_CACHE_VARIABLE, "redis")
if TEST_CACHE not in {"redis", "memory", "redis-down"}:
    raise RuntimeError(f"{TEST_CACHE_VARIABLE} must be redis, memory or redis-down")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With SNIPIX_TEST_CACHE set to `memory` or `redis-down`, run only the tests it can
    change: those whose fixtures include `cache_url`, the one place it is read. The others
    (the engine's own tests, processes started with their own settings) would run exactly
    as in the default pass; pytest reports them as deselected."""
    if TEST_CACHE == "redis":
        return
    selected: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        uses_cache = "cache_url" in getattr(item, "fixturenames", ())
        (selected if uses_cache else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer setting or `.env` file reaches a test."""
    for name in list(os.environ):
        if name.startswith(SETTING_PREFIXES) and name not in {
            TEST_URI_VARIABLE,
            TEST_CACHE_VARIABLE,
        }:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """A test that configures logging (directly or through an app) leaves no stream of
    its own behind: the next test, in any order, starts from structlog's defaults."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def mongodb_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get(TEST_URI_VARIABLE)
    if configured:
        yield configured
        return
    engine = start_engine_process(
        tmp_path_factory.mktemp("engine"), env=clean_env(), stop_with_parent=True
    )
    try:
        yield engine.uri
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def mongo(mongodb_uri: str) -> Iterator[MongoClient[dict[str, Any]]]:
    """A synchronous client for arranging and inspecting data (not bound to an event loop)."""
    client = sync_mongo_client(mongodb_uri)
    yield client
    client.close()


@pytest.fixture(scope="session")
def database_pool(mongo: MongoClient[dict[str, Any]], mongodb_uri: str) -> DatabasePool:
    return DatabasePool.prepared(mongo, mongodb_uri)


@pytest.fixture
def database_name(database_pool: DatabasePool) -> Iterator[str]:
    """A database with the schema a start-up leaves and no documents (tests/databases.py)."""
    name = database_pool.take()
    yield name
    database_pool.give_back(name)


@pytest.fixture
def empty_database_name(mongo: MongoClient[dict[str, Any]]) -> Iterator[str]:
    """A database nothing has touched: for what a first start-up or migration does."""
    name = new_name()
    yield name
    mongo.drop_database(name)


@pytest.fixture(scope="session")
def cache_url(request: pytest.FixtureRequest) -> str | None:
    """The REDIS_URL of this run's apps (see SNIPIX_TEST_CACHE)."""
    if TEST_CACHE == "memory":
        return None
    if TEST_CACHE == "redis-down":
        return f"redis://127.0.0.1:{free_port()}/0"
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture
def settings(
    mongodb_uri: str, database_name: str, tmp_path: Path, cache_url: str | None
) -> Settings:
    return Settings(
        _env_file=None,
        mongodb_uri=mongodb_uri,
        mongodb_database=database_name,
        data_dir=tmp_path / "data",
        log_format="json",
        redis_url=cache_url,
        # One Redis for the whole run, and databases reused: a prefix per test keeps
        # their caches apart.
        cache_prefix=f"test_{uuid.uuid4().hex[:12]}",
        # The worker's redis-server answers within a millisecond, but on a machine another
        # process keeps busy a call can pass the 250 ms default; the rate limiter would
        # then count in process from zero and a limit test see more through. Tests of a
        # slow or hung Redis set their own timeout.
        redis_timeout_ms=2_000,
        # Real argon2id at its lowest cost: the suite's hundreds of sign-ups would otherwise
        # spend tens of seconds of CPU. The standard cost is checked in test_passwords.
        password_hash_cost="minimal",
    )


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    """The test's database through the service's own async client (on the test's loop)."""
    async with connected(settings) as client:
        yield client[settings.database_name]


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the app, with its lifespan (connect, indexes, migrations) run."""
    async with running_app(app) as http:
        yield http


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server; fails (never skips) when it is not installed."""
    try:
        server = RedisServer.find()
    except RuntimeError as error:
        pytest.fail(str(error))
    server.start()
    yield server
    server.stop()
