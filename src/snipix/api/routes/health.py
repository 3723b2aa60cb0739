"""Liveness and readiness, for load balancers and orchestrators.

`/health/live` does no I/O: a process that can answer is alive. `/health/ready` answers 503
while the database does not (the service cannot keep its promises without it) and names
the failing component; a missing cache only degrades (slower, never broken).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

import pymongo
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from snipix.errors import DATABASE_RETRY_AFTER_S
from snipix.resources import Resources, ResourcesDep

router = APIRouter(prefix="/health", tags=["health"])


class Live(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ok", "degraded", "down"]
    failing: list[str]
    reasons: list[str] = []
    components: dict[str, dict[str, Any]]


@router.get("/live", response_model=Live, summary="The process is up (no I/O).")
async def live() -> Live:
    return Live()


async def _database(resources: Resources) -> dict[str, Any]:
    timeout_s = resources.settings.health_timeout_ms / 1000
    started = time.perf_counter()
    try:
        # pymongo.timeout bounds server selection too: with the database gone this returns
        # after timeout_s instead of the (much longer) server selection timeout.
        with pymongo.timeout(timeout_s):
            await resources.db.command("ping")
    except PyMongoError as error:
        return {"status": "down", "error": type(error).__name__, "timeoutMs": timeout_s * 1000}
    return {"status": "ok", "latencyMs": round((time.perf_counter() - started) * 1000, 2)}


async def _cache(resources: Resources) -> dict[str, Any]:
    cache = resources.cache
    if resources.redis is None:
        if cache.backend == "memory":
            return {"status": "ok", "mode": "in-process"}
        return {"status": "disabled", "mode": cache.backend}
    timeout_s = resources.settings.health_timeout_ms / 1000
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            await resources.redis.ping()
    except (RedisError, OSError, TimeoutError) as error:
        return {
            "status": "down",
            "mode": "redis",
            "error": type(error).__name__,
            "pendingInvalidations": cache.pending_invalidations,
        }
    return {
        "status": "ok",
        "mode": "redis",
        "latencyMs": round((time.perf_counter() - started) * 1000, 2),
        "pendingInvalidations": cache.pending_invalidations,
    }


async def _migrations(resources: Resources) -> dict[str, Any]:
    # Read each time: another replica (or `snipix db migrate`) may have migrated since start.
    try:
        with pymongo.timeout(resources.settings.health_timeout_ms / 1000):
            status = await resources.migrations.status()
    except PyMongoError as error:
        return {"status": "unknown", "error": type(error).__name__}
    return status.as_dict()


def _transcriber(resources: Resources) -> dict[str, Any]:
    """Which engine transcription jobs use, and how many this replica runs at once."""
    settings = resources.settings
    engine = resources.services.transcription.transcriber
    return {
        "status": "ok" if settings.transcribe_workers > 0 else "disabled",
        "engine": engine.name,
        "language": engine.language,
        "workers": settings.transcribe_workers,
        **engine.describe(),
    }


@router.get(
    "/ready",
    response_model=Ready,
    summary="Ready to serve: the database answers (503 naming the failing component if not).",
    responses={503: {"model": Ready, "description": "The database does not answer."}},
)
async def ready(resources: ResourcesDep) -> JSONResponse:
    database, cache = await asyncio.gather(_database(resources), _cache(resources))
    migrations = (
        await _migrations(resources) if database["status"] == "ok" else {"status": "unknown"}
    )
    components: dict[str, dict[str, Any]] = {
        "database": database,
        "cache": cache,
        "pool": {"status": "ok", **resources.pool.snapshot()},
        "migrations": migrations,
        "transcriber": _transcriber(resources),
    }
    failing = [n for n, c in components.items() if c.get("status") in {"down", "pending"}]
    reasons = _reasons(database, cache, migrations)
    if database["status"] != "ok":
        # Still 503 (a load balancer should prefer a replica that can write), but with a
        # working cache this replica serves cached reads: degraded, not down.
        serving = "degraded" if cache.get("status") == "ok" else "down"
        body = Ready(status=serving, failing=failing, reasons=reasons, components=components)
        return JSONResponse(
            body.model_dump(),
            status_code=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )
    status: Literal["ok", "degraded"] = "degraded" if failing else "ok"
    body = Ready(status=status, failing=failing, reasons=reasons, components=components)
    return JSONResponse(body.model_dump())


def _reasons(
    database: dict[str, Any], cache: dict[str, Any], migrations: dict[str, Any]
) -> list[str]:
    """Why the service is not fully ok, in words an operator can act on."""
    reasons: list[str] = []
    if database["status"] != "ok":
        if cache.get("status") == "ok":
            reasons.append(
                "database unreachable: cached reads are served (X-Cache: stale); other reads "
                "and all writes fail fast with 503"
            )
        else:
            reasons.append("database unreachable: requests fail with 503")
    if cache.get("status") == "down":
        reasons.append("cache unreachable: reads go to the database (slower, nothing lost)")
    if migrations.get("status") == "pending":
        reasons.append("migrations pending: run `snipix db migrate`")
    return reasons
