"""The app factory: lifespan, the one error shape, request ids."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import BaseModel, Field, SecretStr
from pymongo import MongoClient
from pymongo.errors import AutoReconnect, InvalidOperation, ServerSelectionTimeoutError

from snipix.app import create_app
from snipix.db.client import DatabaseUnreachable
from snipix.errors import DatabaseUnavailable, NotFound, VersionMismatch
from snipix.resources import DatabaseDep, Resources, ResourcesDep
from snipix.settings import Settings
from tests.support import free_port, running_app


class Payload(BaseModel):
    name: str = Field(min_length=1)
    password: str


def add_probe_routes(app: FastAPI) -> None:
    """Routes that raise each kind of error, to see how a client receives them."""

    @app.get("/probe/not-found")
    async def not_found() -> None:
        raise NotFound("Project p_123 was not found.")

    @app.get("/probe/stale")
    async def stale() -> None:
        raise VersionMismatch("Project p_1 changed since you loaded it.", current_version=7)

    @app.get("/probe/unavailable")
    async def unavailable() -> None:
        raise DatabaseUnavailable()

    @app.get("/probe/driver-down")
    async def driver_down() -> None:
        raise ServerSelectionTimeoutError("db-0.internal:27017: connection refused")

    @app.post("/probe/driver-down")
    async def write_not_sent() -> None:
        raise ServerSelectionTimeoutError("db-0.internal:27017: connection refused")

    @app.post("/probe/connection-reset")
    async def write_interrupted() -> None:
        raise AutoReconnect("db-0.internal:27017: connection reset by peer")

    @app.get("/probe/bug")
    async def bug() -> None:
        raise RuntimeError("internal detail: mongodb://admin:hunter2@db-0")

    @app.post("/probe/validate")
    async def validate(payload: Payload) -> dict[str, str]:
        return {"name": payload.name}

    @app.get("/probe/count")
    async def count(db: DatabaseDep) -> dict[str, int]:
        return {"count": await db["probe"].count_documents({})}


@pytest.fixture
async def probe(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    add_probe_routes(app)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app, raise_app_exceptions=False),
            base_url="http://snipix.test",
        ) as http,
    ):
        yield http


async def test_domain_error_has_the_common_shape(probe: httpx.AsyncClient) -> None:
    response = await probe.get("/probe/not-found", headers={"X-Request-ID": "req-42"})
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": "not_found",
            "message": "Project p_123 was not found.",
            "details": None,
            "requestId": "req-42",
        }
    }


async def test_version_mismatch_carries_the_current_version(probe: httpx.AsyncClient) -> None:
    response = await probe.get("/probe/stale")
    assert response.status_code == 412
    assert response.json()["error"]["code"] == "version_mismatch"
    assert response.json()["error"]["details"] == {"currentVersion": 7}


@pytest.mark.parametrize(
    ("method", "path", "says"),
    [
        ("GET", "/probe/unavailable", "your last change was not saved"),
        ("GET", "/probe/driver-down", "temporarily unavailable. Retry in 5 seconds"),
        ("POST", "/probe/driver-down", "your last change was not saved. Retry in 5 seconds"),
        ("POST", "/probe/connection-reset", "may or may not have been saved. Retry in 5 seconds"),
    ],
    ids=["raised", "read", "write-not-sent", "write-interrupted"],
)
async def test_database_outage_is_503_with_retry_after(
    probe: httpx.AsyncClient, method: str, path: str, says: str
) -> None:
    """Clients are told to retry later, in words that say whether their change was saved,
    without any host or driver detail."""
    response = await probe.request(method, path)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    error = response.json()["error"]
    assert error["code"] == "database_unavailable"
    assert says in error["message"]
    assert "db-0" not in response.text
    assert "AutoReconnect" not in response.text


async def test_unexpected_error_hides_internals(probe: httpx.AsyncClient) -> None:
    response = await probe.get("/probe/bug")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error"
    assert error["requestId"] == response.headers["X-Request-ID"]
    assert "hunter2" not in response.text
    assert "internal detail" not in response.text


async def test_validation_error_names_the_field_without_echoing_input(
    probe: httpx.AsyncClient,
) -> None:
    response = await probe.post("/probe/validate", json={"name": "", "password": "s3cret-pw"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith("Invalid request: name:")
    assert error["details"][0]["loc"] == ["body", "name"]
    assert "s3cret-pw" not in response.text


async def test_unknown_route_and_method_use_the_common_shape(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert missing.json()["error"]["message"] == "No route matches GET /api/v1/nothing-here."
    wrong_method = await client.post("/health/live")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    assert wrong_method.headers["Allow"] == "GET"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/v1/projects/p1", "GET, PATCH, DELETE"),
        ("DELETE", "/api/v1/projects", "GET, POST"),
        ("POST", "/api/v1/projects/p1/timeline", "GET, PUT, PATCH"),
    ],
)
async def test_a_405_allows_every_method_of_every_route_at_its_path(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    """A path served by several routes names all their methods in `Allow` (the router
    named only the first route's)."""
    answer = await client.request(method, path, headers={"X-User-Id": "alice"})
    assert answer.status_code == 405
    assert answer.headers["Allow"] == allowed


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/health/live", headers={"X-Request-ID": "editor-7f3:abc.1"})
    assert echoed.headers["X-Request-ID"] == "editor-7f3:abc.1"
    generated = await client.get("/health/live")
    assert len(generated.headers["X-Request-ID"]) == 32
    # An id that could forge log lines or headers is replaced, not trusted.
    hostile = await client.get("/health/live", headers={"X-Request-ID": "x" * 200})
    assert hostile.headers["X-Request-ID"] != "x" * 200
    assert len(hostile.headers["X-Request-ID"]) == 32


async def test_database_dependency_reaches_the_configured_database(
    probe: httpx.AsyncClient, settings: Settings, mongo: MongoClient[dict[str, Any]]
) -> None:
    mongo[settings.database_name]["probe"].insert_many([{"n": 1}, {"n": 2}])
    response = await probe.get("/probe/count")
    assert response.json() == {"count": 2}


async def test_lifespan_creates_the_index_catalogue(
    client: httpx.AsyncClient, settings: Settings, mongo: MongoClient[dict[str, Any]]
) -> None:
    indexes = mongo[settings.database_name]["projects"].index_information()
    assert {"active_by_updated", "active_by_created", "text_name_description", "deleted_at"} <= set(
        indexes
    )
    assert indexes["active_by_updated"]["partialFilterExpression"] == {"isDeleted": False}


async def test_lifespan_closes_the_database_client(settings: Settings) -> None:
    """After shutdown the client the requests used is closed: no connection is left open."""
    app = create_app(settings)
    seen: list[Resources] = []

    @app.get("/probe/resources")
    async def capture(resources: ResourcesDep) -> None:
        seen.append(resources)

    async with running_app(app) as http:
        assert (await http.get("/probe/resources")).status_code == 200
        assert await seen[0].db["x"].find_one({}) is None
    with pytest.raises(InvalidOperation):
        await seen[0].db["x"].find_one({})


async def test_startup_fails_fast_when_database_is_unreachable(settings: Settings) -> None:
    unreachable = settings.model_copy(
        update={
            "mongodb_uri": SecretStr(f"mongodb://snipix:pw-Secret9@127.0.0.1:{free_port()}/"),
            "mongodb_server_selection_timeout_ms": 300,
        }
    )
    app = create_app(unreachable)
    with pytest.raises(DatabaseUnreachable) as failed:
        async with LifespanManager(app):
            pass
    assert "127.0.0.1" in str(failed.value)
    assert "pw-Secret9" not in str(failed.value)
