"""What sharing costs a read: one project's GET by its owner and by a member, in process.

    .venv/bin/python benchmarks/sharing.py [--requests 2000] [--mongodb-uri URI] [--redis-url URL]

The app as configured by default (Redis, local layer, hot-read lane) over an embedded
engine (or `--mongodb-uri`) and redis-server (or `--redis-url`), called as an ASGI app
with a prepared scope (as `benchmarks/app_only.py`). The owner's read is the cached lane;
a member's read is routed (the lane answers only an entry's owner) and reads the member's
row from the database on every request, by design (docs/decisions.md, "Sharing"). The
driver's own `find_one` by `_id` is printed beside it: the floor of that extra read.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

import httpx
from app_only import call, scope_for, settings_for
from asgi_lifespan import LifespanManager
from harness import database, describe_engine, redis_server
from pymongo import AsyncMongoClient

from snipix.app import create_app
from snipix.observability.logging import configure_logging

OWNER = "bench-user"
MEMBER = "bench-member"


def as_user(scope: dict[str, Any], user: str) -> dict[str, Any]:
    headers = [(k, v) for k, v in scope["headers"] if k != b"x-user-id"]
    return {**scope, "headers": [*headers, (b"x-user-id", user.encode())]}


async def timed(app: Any, scope: dict[str, Any], requests: int) -> float:
    for _ in range(200):  # warm: caches filled, the member row's pages in the engine
        assert await call(app, scope) == 200
    started = time.perf_counter()
    for _ in range(requests):
        await call(app, scope)
    return (time.perf_counter() - started) / requests * 1e6


async def floor(uri: str, requests: int) -> float:
    """The raw driver's `find_one` by `_id` on project_members: the member check's read."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        members = client["bench_app_only"]["project_members"]
        doc = await members.find_one({})
        assert doc is not None
        started = time.perf_counter()
        for _ in range(requests):
            await members.find_one({"_id": doc["_id"]})
        return (time.perf_counter() - started) / requests * 1e6
    finally:
        await client.close()


async def run(args: argparse.Namespace, uri: str, redis_url: str, embedded: bool) -> None:
    print(f"engine  {await describe_engine(uri, embedded)}", flush=True)
    settings = settings_for("cached, hot lane", uri, redis_url)
    sink = open(os.devnull, "w")  # noqa: SIM115, ASYNC230 (/dev/null never blocks)
    stderr, sys.stderr = sys.stderr, sink
    try:
        configure_logging(settings)
        app = create_app(settings)
        async with LifespanManager(app, startup_timeout=60) as manager:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app), base_url="http://bench"
            ) as http:
                created = await http.post(
                    "/api/v1/projects", json={"name": "P"}, headers={"X-User-Id": OWNER}
                )
                project_id = created.json()["id"]
                client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
                await client["bench_app_only"]["users"].update_one(
                    {"_id": MEMBER}, {"$set": {"status": "active"}}, upsert=True
                )
                await client.close()
                shared = await http.post(
                    f"/api/v1/projects/{project_id}/members",
                    json={"userId": MEMBER, "role": "viewer"},
                    headers={"X-User-Id": OWNER},
                )
                assert shared.status_code == 201, shared.text
            scope = scope_for(f"/api/v1/projects/{project_id}")
            results: dict[str, float] = {}
            for _ in range(2):  # each twice, interleaved, the better kept: a shared machine
                for user in (OWNER, MEMBER):
                    us = await timed(manager.app, as_user(scope, user), args.requests)
                    results[user] = min(results.get(user, us), us)
    finally:
        sys.stderr = stderr
        sink.close()
    print(f"\n  {'GET /api/v1/projects/{id} by':<32} {'us/request':>11}")
    print(f"  {'the owner (hot lane)':<32} {results[OWNER]:>11.0f}")
    print(f"  {'a member (routed, role read)':<32} {results[MEMBER]:>11.0f}")
    print(f"  {'floor: driver find_one by _id':<32} {await floor(uri, args.requests):>11.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--mongodb-uri", help="use this server instead of an embedded engine")
    parser.add_argument("--redis-url", help="use this Redis instead of starting redis-server")
    args = parser.parse_args()
    with database(args.mongodb_uri) as (uri, embedded, _), redis_server(args.redis_url) as url:
        asyncio.run(run(args, uri, url, embedded))


if __name__ == "__main__":
    main()
