"""Liveness and readiness as a load balancer sees them."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from snipix.app import create_app
from snipix.db.client import Database
from snipix.db.migrations import Migration
from snipix.settings import Settings
from tests.support import RedisServer, running_app


async def test_live_answers_without_io(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_reports_every_component(settings: Settings) -> None:
    """With the database up and no Redis configured the service is ready (in-process cache)."""
    async with running_app(create_app(settings.model_copy(update={"redis_url": None}))) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["failing"] == []
    components = body["components"]
    assert components["database"]["status"] == "ok"
    assert components["database"]["latencyMs"] >= 0
    assert components["cache"] == {"status": "ok", "mode": "in-process"}
    assert body["reasons"] == []
    assert components["pool"]["max"] == 100
    assert components["pool"]["open"] >= 1
    assert components["migrations"]["status"] == "ok"


async def test_ready_with_redis_up(settings: Settings, redis_server: RedisServer) -> None:
    app = create_app(settings.model_copy(update={"redis_url": SecretStr(redis_server.url)}))
    async with running_app(app) as http:
        response = await http.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["components"]["cache"]["status"] == "ok"


@pytest.mark.process
async def test_redis_down_degrades_but_stays_ready(settings: Settings) -> None:
    """Redis gone means slower, never broken: still 200, status degraded, cache named."""
    redis = RedisServer.find().start()
    try:
        app = create_app(settings.model_copy(update={"redis_url": SecretStr(redis.url)}))
        async with running_app(app) as http:
            assert (await http.get("/health/ready")).json()["status"] == "ok"
            redis.stop()
            response = await http.get("/health/ready")
    finally:
        redis.stop()
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["failing"] == ["cache"]
    assert body["components"]["cache"]["status"] == "down"
    assert body["components"]["database"]["status"] == "ok"
    assert body["reasons"] == ["cache unreachable: reads go to the database (slower, nothing lost)"]


async def test_pending_migrations_degrade_readiness(
    settings: Settings, empty_database_name: str
) -> None:
    """A build whose migrations have not run says so instead of pretending all is well."""
    settings = settings.model_copy(update={"mongodb_database": empty_database_name})

    async def add_field(db: Database) -> None:
        await db["projects"].update_many({}, {"$set": {"tags": []}})

    migrations = [Migration("0001_tags", "every project has tags", add_field)]
    app = create_app(settings.model_copy(update={"migrate_on_start": False}), migrations=migrations)
    async with running_app(app) as http:
        body = (await http.get("/health/ready")).json()
        assert body["status"] == "degraded"
        assert body["failing"] == ["migrations"]
        assert body["components"]["migrations"]["pending"] == ["0001_tags"]

        # Another replica starting with SNIPIX_MIGRATE_ON_START applies them meanwhile.
        other = create_app(settings, migrations=migrations)
        async with running_app(other):
            pass
        body = (await http.get("/health/ready")).json()
    assert body["status"] == "ok"
    assert body["components"]["migrations"] == {
        "status": "ok",
        "applied": 1,
        "pending": [],
        "unknown": [],
    }
