"""Two real `snipix serve` replicas, one real redis-server stopped with SIGSTOP (hung, not
dead: no error, no closed connection, just silence).

A write acknowledged by replica one while Redis hangs must not be answered old by replica
two for longer than SNIPIX_CACHE_LOCAL_MAX_LAG_MS (here its default, 1 s): the local layer
of replica two hears nothing from Redis and must treat silence as "unknown", not as
"nothing changed". And once Redis returns with its old entries, replica two must not serve
them while replica one still holds the invalidation it could not deliver.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import (
    RedisServer,
    loopback_client,
    serving,
    wait_until,
)

pytestmark = pytest.mark.process

USER = {"X-User-Id": "editor"}
BOUND_S = 1.0  # SNIPIX_CACHE_LOCAL_MAX_LAG_MS' default
# Scheduling on a busy machine between "the answer arrived" and "the next request left".
SLACK_S = 0.25
# How long each replica is watched after the write and after Redis' return.
WATCH_S = BOUND_S + 2.0


@contextmanager
def replica(
    tmp_path: Path, name: str, mongodb_uri: str, database: str, redis_url: str
) -> Iterator[str]:
    """`snipix serve` as an operator starts it, ready; its base URL."""
    env = {"MONGODB_URI": mongodb_uri, "MONGODB_DATABASE": database, "REDIS_URL": redis_url}
    with serving(tmp_path / name, env, name=f"replica {name}") as base:
        yield base


def project_name(http: httpx.Client, base: str, project_id: str) -> tuple[str, str | None]:
    response = http.get(f"{base}/api/v1/projects/{project_id}", headers=USER)
    assert response.status_code == 200, response.text
    return response.json()["name"], response.headers.get("X-Cache")


def marker_ids(http: httpx.Client, base: str, project_id: str) -> tuple[list[str], str | None]:
    response = http.get(f"{base}/api/v1/projects/{project_id}/timeline", headers=USER)
    assert response.status_code == 200, response.text
    markers: list[dict[str, Any]] = response.json()["state"]["markers"]
    return [marker["id"] for marker in markers], response.headers.get("X-Cache")


@dataclass
class Watched:
    """One state replica two is read for: how, what counts as new, when it was written."""

    what: str
    read: Callable[[], tuple[Any, str | None]]
    is_new: Callable[[Any], bool]
    written_at: float
    seen: list[tuple[float, Any, str | None]] = field(default_factory=list)


def watch(*watched: Watched) -> None:
    """Read each for WATCH_S after the last write: an answer that started more than the
    bound after its write must be the new state, and the new state must be reached."""
    last = max(item.written_at for item in watched)

    def window_over() -> bool:
        for item in watched:
            started = time.monotonic()
            value, cache = item.read()
            age = started - item.written_at
            item.seen.append((round(age, 3), value, cache))
            assert item.is_new(value) or age < BOUND_S + SLACK_S, (
                f"{item.what}: old state answered {age:.2f}s after the write: {item.seen}"
            )
        return time.monotonic() - last >= WATCH_S

    # Every answer in the window is checked; the deadline only bounds a broken run.
    wait_until(window_over, timeout_s=WATCH_S + 60, interval_s=0.05, what="the watch window")
    for item in watched:
        assert item.is_new(item.seen[-1][1]), f"{item.what}: never the new state: {item.seen}"
        print(item.what, item.seen)


def test_a_hung_redis_never_lets_another_replica_answer_an_acknowledged_write_old(
    tmp_path: Path, mongodb_uri: str, database_name: str
) -> None:
    redis = RedisServer.find().start()
    assert redis.process is not None
    try:
        with ExitStack() as stack, loopback_client(timeout=30) as http:
            one = stack.enter_context(
                replica(tmp_path, "one", mongodb_uri, database_name, redis.url)
            )
            two = stack.enter_context(
                replica(tmp_path, "two", mongodb_uri, database_name, redis.url)
            )
            created = http.post(f"{one}/api/v1/projects", json={"name": "before"}, headers=USER)
            assert created.status_code == 201, created.text
            project_id = created.json()["id"]
            timeline = f"/api/v1/projects/{project_id}/timeline"
            saved = http.put(
                f"{one}{timeline}",
                json={"state": {"markers": [{"id": "m0", "time": 0}]}},
                headers={**USER, "If-Match": '"0"'},
            )
            assert saved.status_code == 200, saved.text

            # Replica two holds both in memory (the second read of each is a hit).
            wait_until(
                lambda: project_name(http, two, project_id) == ("before", "hit"),
                timeout_s=10,
                what="replica two to answer the project from its cache",
            )
            wait_until(
                lambda: marker_ids(http, two, project_id) == (["m0"], "hit"),
                timeout_s=10,
                what="replica two to answer the timeline from its cache",
            )

            os.kill(redis.process.pid, signal.SIGSTOP)
            renamed = http.patch(
                f"{one}/api/v1/projects/{project_id}",
                json={"name": "after"},
                headers={**USER, "If-Match": f'"{created.json()["version"]}"'},
            )
            assert renamed.status_code == 200, renamed.text
            renamed_at = time.monotonic()
            autosaved = http.patch(
                f"{one}{timeline}",
                json=[{"op": "add", "path": "/markers/-", "value": {"id": "m1", "time": 1}}],
                headers={
                    **USER,
                    "If-Match": saved.headers["ETag"],
                    "Content-Type": "application/json-patch+json",
                },
            )
            assert autosaved.status_code == 200, autosaved.text
            autosaved_at = time.monotonic()

            watch(
                Watched(
                    "project",
                    lambda: project_name(http, two, project_id),
                    lambda name: name == "after",
                    renamed_at,
                ),
                Watched(
                    "timeline",
                    lambda: marker_ids(http, two, project_id),
                    lambda ids: ids == ["m0", "m1"],
                    autosaved_at,
                ),
            )

            # Redis returns with its entries from before the writes: replica two must not
            # serve them (replica one delivers its held invalidations on its next probe).
            os.kill(redis.process.pid, signal.SIGCONT)
            returned_at = time.monotonic()
            after_return: list[tuple[float, Any, str | None]] = []

            def window_over() -> bool:
                for value, cache in (
                    project_name(http, two, project_id),
                    marker_ids(http, two, project_id),
                ):
                    after_return.append((round(time.monotonic() - returned_at, 3), value, cache))
                    assert value in ("after", ["m0", "m1"]), after_return
                return time.monotonic() - returned_at >= WATCH_S

            wait_until(
                window_over, timeout_s=WATCH_S + 60, interval_s=0.05, what="the watch window"
            )
            print("after Redis returned", after_return)
            wait_until(
                lambda: project_name(http, two, project_id) == ("after", "hit"),
                timeout_s=30,
                what="replica two to cache the project again",
            )
            assert time.monotonic() - returned_at < 30
    finally:
        os.kill(redis.process.pid, signal.SIGCONT)
        redis.stop()
