"""Test harness: one real database engine per session, one database per test.

The embedded engine runs as its own process (started by the same launcher `snipix serve`
uses) and every test talks to it over the MongoDB wire protocol with PyMongo. Set
`SNIPIX_TEST_MONGODB_URI` to run the same tests against a real MongoDB instead. Tests that
need Redis get a real `redis-server` on a free port.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import MongoClient

from snipix.app import create_app
from snipix.db.client import Database, connected
from snipix.db.launcher import start_engine_process
from snipix.settings import Settings
from tests.support import SETTING_PREFIXES, RedisServer, clean_env, running_app

TEST_URI_VARIABLE = "SNIPIX_TEST_MONGODB_URI"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer setting or `.env` file reaches a test."""
    for name in list(os.environ):
        if name.startswith(SETTING_PREFIXES) and name != TEST_URI_VARIABLE:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


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
    client: MongoClient[dict[str, Any]] = MongoClient(
        mongodb_uri, serverSelectionTimeoutMS=5000, tz_aware=True
    )
    yield client
    client.close()


@pytest.fixture
def database_name(mongo: MongoClient[dict[str, Any]]) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    mongo.drop_database(name)


@pytest.fixture
def settings(mongodb_uri: str, database_name: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        mongodb_uri=mongodb_uri,
        mongodb_database=database_name,
        data_dir=tmp_path / "data",
        log_format="json",
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
