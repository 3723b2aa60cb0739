"""Live events across replicas: two `snipix serve` processes with one redis-server and one
engine, as production runs them; a save on one reaches a stream open on the other."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.events.sse import open_stream
from tests.support import RedisServer, async_loopback_client, serving

pytestmark = pytest.mark.process

OWNER = {"X-User-Id": "editor"}
PATCH_TYPE = {"Content-Type": "application/json-patch+json"}


def marker(n: int) -> str:
    return json.dumps(
        [{"op": "add", "path": "/markers/-", "value": {"id": f"m{n}", "time": float(n)}}]
    )


async def test_a_save_on_one_replica_reaches_a_stream_on_the_other_and_resumes_there(
    tmp_path: Path, mongodb_uri: str, database_name: str, redis_server: RedisServer
) -> None:
    env = {
        "MONGODB_URI": mongodb_uri,
        "MONGODB_DATABASE": database_name,
        "REDIS_URL": redis_server.url,
        "SNIPIX_CACHE_PREFIX": f"test_{uuid.uuid4().hex[:12]}",
    }
    with ExitStack() as stack:
        first = stack.enter_context(serving(tmp_path / "one", env, name="replica 1"))
        second = stack.enter_context(serving(tmp_path / "two", env, name="replica 2"))
        async with async_loopback_client(timeout=30) as http:
            created = await http.post(
                f"{first}/api/v1/projects", json={"name": "Cut"}, headers=OWNER
            )
            assert created.status_code == 201, created.text
            project_id = created.json()["id"]
            timeline = f"/api/v1/projects/{project_id}/timeline"
            events = f"/api/v1/projects/{project_id}/events"

            async def save(base: str, version: int) -> None:
                answer = await http.patch(
                    f"{base}{timeline}",
                    content=marker(version + 1),
                    headers={**OWNER, **PATCH_TYPE, "If-Match": f'"{version}"'},
                )
                assert answer.status_code == 200, answer.text

            async with open_stream(http, f"{second}{events}", OWNER) as stream:
                assert await stream.next() is not None  # open (subscribed) on replica 2
                began = time.perf_counter()
                await save(first, 0)
                revision = await stream.next_event("revision")
                took = time.perf_counter() - began
                assert revision.id == 1
                assert revision.data["patch"] == json.loads(marker(1))
                print(f"replica 1's save reached replica 2's stream in {took * 1000:.0f} ms")

            # The tab reconnects, to replica 1 this time, after two saves on replica 2.
            await save(second, 1)
            await save(second, 2)
            async with open_stream(
                http, f"{first}{events}", {**OWNER, "Last-Event-ID": "1"}
            ) as stream:
                seen = [(await stream.next_event("revision")).id for _ in range(2)]
                assert seen == [2, 3]
                await save(second, 3)
                assert (await stream.next_event("revision")).id == 4
                # Nothing repeated: the next message is a later one, not a revision again.
                await save(first, 4)
                assert (await asyncio.wait_for(stream.next_event("revision"), 30)).id == 5
