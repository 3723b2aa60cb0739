"""Graceful shutdown under a real uvicorn server: in-flight work finishes, then clients close."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import uvicorn
from pymongo import MongoClient

from snipix.app import create_app
from snipix.resources import DatabaseDep
from snipix.settings import Settings
from tests.support import free_port


async def test_in_flight_request_finishes_before_the_database_client_closes(
    settings: Settings, mongo: MongoClient[dict[str, Any]]
) -> None:
    """A save that is running when shutdown begins completes and is acknowledged."""
    app = create_app(settings)
    entered = asyncio.Event()

    @app.post("/probe/slow-save")
    async def slow_save(db: DatabaseDep) -> dict[str, bool]:
        entered.set()
        await asyncio.sleep(0.5)
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
    while not server.started:
        assert not serving.done(), "uvicorn exited during start-up"
        await asyncio.sleep(0.02)

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        in_flight = asyncio.create_task(http.post("/probe/slow-save"))
        await entered.wait()
        server.should_exit = True
        response = await in_flight
    await asyncio.wait_for(serving, timeout=10)

    assert response.status_code == 200
    assert response.json() == {"saved": True}
    assert mongo[settings.database_name]["probe"].count_documents({"saved": True}) == 1
