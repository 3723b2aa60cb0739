"""Graceful shutdown under a real uvicorn server: in-flight work finishes, then clients close."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from pymongo import MongoClient

from snipix.app import create_app
from snipix.resources import DatabaseDep
from snipix.settings import Settings
from tests.support import async_loopback_client, free_port, until


async def test_in_flight_request_finishes_before_the_database_client_closes(
    settings: Settings, mongo: MongoClient[dict[str, Any]]
) -> None:
    """A save that is running when shutdown begins completes and is acknowledged."""
    app = create_app(settings)
    entered = asyncio.Event()
    shutting_down = asyncio.Event()

    @app.post("/probe/slow-save")
    async def slow_save(db: DatabaseDep) -> dict[str, bool]:
        entered.set()
        # Still running when shutdown begins, for sure: it goes on only once it has.
        await shutting_down.wait()
        await db["probe"].insert_one({"saved": True})
        return {"saved": True}

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            lifespan="on",
            log_config=None,
            timeout_graceful_shutdown=settings.shutdown_grace_s,
        )
    )
    serving = asyncio.create_task(server.serve())
    await until(lambda: server.started or serving.done(), what="uvicorn to start")
    assert not serving.done(), "uvicorn exited during start-up"
    assert server.servers, "uvicorn listens"

    async with async_loopback_client(base_url=f"http://127.0.0.1:{port}") as http:
        in_flight = asyncio.create_task(http.post("/probe/slow-save"))
        await asyncio.wait_for(entered.wait(), timeout=30)
        server.should_exit = True
        # uvicorn's shutdown first stops accepting connections, then drains the ones open.
        await until(
            lambda: not any(listener.is_serving() for listener in server.servers),
            what="uvicorn to begin shutting down",
        )
        shutting_down.set()
        response = await in_flight
    await asyncio.wait_for(serving, timeout=10)

    assert response.status_code == 200
    assert response.json() == {"saved": True}
    assert mongo[settings.database_name]["probe"].count_documents({"saved": True}) == 1
