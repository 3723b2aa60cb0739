"""Fault injection with real processes: the database engine, then redis-server, is killed
under a steady stream of creates, updates, autosaves and reads from concurrent editors, and
started again.

What the editors must see: every write acknowledged with 2xx is in the database afterwards;
every write that failed got a clear 503 (Retry-After, our error code, no driver text); no
write is applied twice (also when the client repeats a failed one with its Idempotency-Key);
cached reads keep answering while the database is away; the service recovers by itself
within 5 s of the engine's return. Redis going away costs no request anything.

Each test prints its figures (`pytest -s tests/test_resilience.py`).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from tests.support import (
    RedisServer,
    SnipixProcess,
    async_loopback_client,
    clean_env,
    engine_command,
    free_port,
    http_status,
    until,
    wait_for_engine,
    wait_until,
)

pytestmark = pytest.mark.process

USERS = ("editor-0", "editor-1", "editor-2")
DATABASE = "resilience"
# The scenario's phases, at least this long each (a phase also lasts until the editors have
# seen what the assertions below are about, within DEADLINE_S): these pace the fault, they
# do not synchronise anything.
RUN_BEFORE_S = 3.0
OUTAGE_S = 4.0
RUN_AFTER_S = 4.0
DEADLINE_S = 60.0
# Each editor's pause between requests: a steady stream, not a flood that would measure
# the machine instead of the service.
PACE_S = 0.05
RECOVERY_BOUND_S = 5.0
DATABASE_CODES = {"database_unavailable", "database_timeout"}


@dataclass
class Attempt:
    kind: str
    user: str
    value: str
    status: int
    at: float
    key: str | None = None
    if_match: str | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Stack:
    engine_port: int
    data_dir: Path
    tmp_path: Path
    engine: SnipixProcess
    service: SnipixProcess
    base: str
    redis: RedisServer | None

    @property
    def engine_uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.engine_port}/?directConnection=true"

    def restart_engine(self, name: str) -> None:
        self.engine = engine_command(self.data_dir, self.engine_port, self.tmp_path, name).start()
        wait_for_engine(self.data_dir)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    engine_port = free_port()
    data_dir = tmp_path / "engine-data"
    engine = engine_command(data_dir, engine_port, tmp_path).start()
    wait_for_engine(data_dir)
    redis = RedisServer.find().start()
    port = free_port()
    service = SnipixProcess(
        ["serve", "--port", str(port)],
        env=clean_env(
            MONGODB_URI=f"mongodb://127.0.0.1:{engine_port}/?directConnection=true",
            MONGODB_DATABASE=DATABASE,
            REDIS_URL=redis.url,
            SNIPIX_HEALTH_TIMEOUT_MS="500",
            SNIPIX_RETENTION_INTERVAL_S="0",
        ),
        cwd=tmp_path,
        log_path=tmp_path / "serve.log",
    ).start()
    base = f"http://127.0.0.1:{port}"
    built = Stack(engine_port, data_dir, tmp_path, engine, service, base, redis)
    try:
        wait_until(
            lambda: http_status(f"{base}/health/ready") == 200,
            timeout_s=60,
            what="the service to be ready",
        )
        yield built
    finally:
        built.service.stop()
        built.service.kill()
        built.engine.kill()
        if built.redis is not None:
            built.redis.stop()


class Editors:
    """Three editors, each creating projects, renaming one, autosaving its timeline and
    reading another (cached) project, until told to stop."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.attempts: list[Attempt] = []
        self.reads: list[tuple[float, int, str | None]] = []
        self.stop = asyncio.Event()
        self.hot: dict[str, str] = {}
        self.cold: dict[str, str] = {}

    @staticmethod
    def who(user: str, **extra: str) -> dict[str, str]:
        return {"X-User-Id": user, **extra}

    async def seed(self) -> None:
        for user in USERS:
            for name, into in (("hot", self.hot), ("cold", self.cold)):
                created = await self.http.post(
                    "/api/v1/projects", json={"name": f"{user}-{name}"}, headers=self.who(user)
                )
                assert created.status_code == 201, created.text
                into[user] = created.json()["id"]
            saved = await self.http.put(
                f"/api/v1/projects/{self.hot[user]}/timeline",
                json={"state": {"tracks": [{"id": "v1", "kind": "video"}]}},
                headers=self.who(user, **{"If-Match": '"0"'}),
            )
            assert saved.status_code == 200, saved.text
            # Cached before the outage: the reader's project.
            assert (
                await self.http.get(f"/api/v1/projects/{self.cold[user]}", headers=self.who(user))
            ).status_code == 200

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
        try:
            return await self.http.request(method, url, **kwargs)
        except httpx.HTTPError:
            return None

    def _record(
        self, kind: str, user: str, value: str, response: httpx.Response | None, **extra: Any
    ) -> Attempt:
        attempt = Attempt(
            kind,
            user,
            value,
            response.status_code if response is not None else 0,
            time.monotonic(),
            body=_json(response),
            headers=dict(response.headers) if response is not None else {},
            **extra,
        )
        self.attempts.append(attempt)
        return attempt

    async def creator(self, user: str) -> None:
        number = 0
        while not self.stop.is_set():
            number += 1
            name = f"{user}-c{number}"
            response = await self._send(
                "POST",
                "/api/v1/projects",
                json={"name": name},
                headers=self.who(user, **{"Idempotency-Key": name}),
            )
            self._record("create", user, name, response, key=name)
            await asyncio.sleep(PACE_S)

    async def updater(self, user: str) -> None:
        url = f"/api/v1/projects/{self.hot[user]}"
        version = 1
        number = 0
        while not self.stop.is_set():
            number += 1
            name = f"{user}-u{number}"
            response = await self._send(
                "PATCH",
                url,
                json={"name": name},
                headers=self.who(user, **{"If-Match": f'"{version}"'}),
            )
            self._record("update", user, name, response)
            if response is not None and response.status_code == 200:
                version = response.json()["version"]
            elif response is not None and response.status_code == 412:
                version = response.json()["error"]["details"]["currentVersion"]
            await asyncio.sleep(PACE_S)

    async def autosaver(self, user: str) -> None:
        url = f"/api/v1/projects/{self.hot[user]}/timeline"
        version = 1
        number = 0
        while not self.stop.is_set():
            number += 1
            marker = f"{user}-m{number}"
            if_match = f'"{version}"'
            response = await self._send(
                "PATCH",
                url,
                json=[
                    {
                        "op": "add",
                        "path": "/markers/-",
                        "value": {"id": marker, "time": number / 10},
                    }
                ],
                headers=self.who(
                    user,
                    **{
                        "If-Match": if_match,
                        "Idempotency-Key": marker,
                        "Content-Type": "application/json-patch+json",
                        "Prefer": "return=minimal",
                    },
                ),
            )
            self._record("autosave", user, marker, response, key=marker, if_match=if_match)
            if response is not None and response.status_code in {200, 204}:
                version = int(response.headers["ETag"].strip('"'))
            elif response is not None and response.status_code == 412:
                version = response.json()["error"]["details"]["currentVersion"]
            await asyncio.sleep(PACE_S)

    async def reader(self, user: str) -> None:
        url = f"/api/v1/projects/{self.cold[user]}"
        while not self.stop.is_set():
            response = await self._send("GET", url, headers=self.who(user))
            status = response.status_code if response is not None else 0
            cache = response.headers.get("X-Cache") if response is not None else None
            self.reads.append((time.monotonic(), status, cache))
            await asyncio.sleep(PACE_S)

    def workers(self) -> list[asyncio.Task[None]]:
        tasks: list[asyncio.Task[None]] = []
        for user in USERS:
            for work in (self.creator, self.updater, self.autosaver, self.reader):
                tasks.append(asyncio.create_task(work(user)))
        return tasks

    async def retry_failed(self) -> list[Attempt]:
        """What a client does after the outage: repeat each failed keyed write, same key."""
        repeats: list[Attempt] = []
        for attempt in [a for a in self.attempts if a.status in {0, 503} and a.key is not None]:
            key = attempt.key
            assert key is not None
            for _ in range(20):
                if attempt.kind == "create":
                    response = await self._send(
                        "POST",
                        "/api/v1/projects",
                        json={"name": attempt.value},
                        headers=self.who(attempt.user, **{"Idempotency-Key": key}),
                    )
                else:
                    assert attempt.if_match is not None
                    number = int(attempt.value.rsplit("m", 1)[1])
                    response = await self._send(
                        "PATCH",
                        f"/api/v1/projects/{self.hot[attempt.user]}/timeline",
                        json=[
                            {
                                "op": "add",
                                "path": "/markers/-",
                                "value": {"id": attempt.value, "time": number / 10},
                            }
                        ],
                        headers=self.who(
                            attempt.user,
                            **{
                                "If-Match": attempt.if_match,
                                "Idempotency-Key": key,
                                "Content-Type": "application/json-patch+json",
                                "Prefer": "return=minimal",
                            },
                        ),
                    )
                if response is not None and response.status_code not in {0, 409, 503}:
                    break
                await asyncio.sleep(0.2)  # a client's pause before trying again
            repeats.append(
                self._record(f"{attempt.kind}-retry", attempt.user, attempt.value, response)
            )
        return repeats


def _json(response: httpx.Response | None) -> Any:
    if response is None or not response.content:
        return None
    try:
        return response.json()
    except json.JSONDecodeError:
        return response.text


def assert_clear_503(attempt: Attempt) -> None:
    """A failed write says what happened, when to retry, and nothing about our internals."""
    assert attempt.headers.get("retry-after", "").isdigit(), attempt
    error = attempt.body["error"]
    assert error["code"] in DATABASE_CODES, attempt
    assert "Retry in" in error["message"]
    text = json.dumps(attempt.body)
    for internal in ("127.0.0.1", "Errno", "ServerSelection", "AutoReconnect", "Traceback"):
        assert internal not in text, text


def database(stack: Stack) -> Iterator[Any]:
    client: MongoClient[dict[str, Any]] = MongoClient(
        stack.engine_uri, serverSelectionTimeoutMS=10_000
    )
    try:
        yield client[DATABASE]
    finally:
        client.close()


def first_success_after(attempts: list[Attempt], kind: str, after: float) -> float | None:
    times = [a.at for a in attempts if a.kind == kind and a.at > after and 200 <= a.status < 300]
    return min(times) - after if times else None


async def test_engine_killed_under_load_loses_nothing_and_recovers(stack: Stack) -> None:
    """SIGKILL the database engine under concurrent editors, start it again: every
    acknowledged write is there once, failures were clear 503s, cached reads kept
    answering, and writes succeed again within 5 s of the engine's return."""
    async with async_loopback_client(base_url=stack.base, timeout=15) as http:
        editors = Editors(http)
        await editors.seed()
        tasks = editors.workers()
        await asyncio.sleep(RUN_BEFORE_S)  # the steady stream, before the fault
        killed_at = time.monotonic()
        stack.engine.signal(signal.SIGKILL)
        stack.engine.wait()

        def outage_seen() -> bool:
            """The editors met the outage: a write failed, a read after it was served stale."""
            return any(a.status == 503 for a in editors.attempts) and any(
                at > killed_at + 0.5 and cache == "stale" for at, _, cache in editors.reads
            )

        await until(
            lambda: time.monotonic() - killed_at >= OUTAGE_S and outage_seen(),
            what="a failed write and a stale read during the engine outage",
            deadline_s=OUTAGE_S + DEADLINE_S,
            interval_s=0.1,
        )
        await asyncio.to_thread(stack.restart_engine, "engine-again")
        back_at = time.monotonic()
        ready_after: float | None = None

        def recovered() -> bool:
            """Ready, and a write of every kind succeeded since the engine's return."""
            return ready_after is not None and all(
                first_success_after(editors.attempts, kind, back_at) is not None
                for kind in ("create", "update", "autosave")
            )

        # Run on for RUN_AFTER_S, and until recovery is seen (its time is asserted below).
        while time.monotonic() - back_at < RUN_AFTER_S or not recovered():
            if time.monotonic() - back_at > DEADLINE_S:
                break  # the assertions below say what did not recover
            if (
                ready_after is None
                and await asyncio.to_thread(http_status, f"{stack.base}/health/ready") == 200
            ):
                ready_after = time.monotonic() - back_at
            await asyncio.sleep(0.1)
        editors.stop.set()
        await asyncio.gather(*tasks)
        repeats = await editors.retry_failed()

    attempts = [a for a in editors.attempts if not a.kind.endswith("-retry")]
    statuses = Counter((a.kind, a.status) for a in attempts)
    failed = [a for a in attempts if a.status == 503]
    for attempt in failed:
        assert_clear_503(attempt)
    # Writes answer 2xx, 412 (a stale If-Match after a failed write that did commit) or 503.
    assert {status for _, status in statuses} <= {200, 201, 204, 412, 503}, statuses
    assert failed, "the outage must have failed some writes"

    for db in database(stack):
        # Creates: every acknowledged one exists once; a repeat with its key never adds one.
        names = Counter(doc["name"] for doc in db.projects.find({}, {"name": 1}))
        created = {a.value for a in attempts if a.kind == "create" and a.status == 201}
        assert all(names[name] == 1 for name in created), "an acknowledged create is missing"
        assert all(count == 1 for count in names.values()), "a project was created twice"
        for repeat in (r for r in repeats if r.kind == "create-retry"):
            assert repeat.status == 201, repeat
            assert names[repeat.value] == 1

        # Updates: each acknowledged name is in the history exactly once, none twice.
        lost_updates = 0
        for user in USERS:
            project_id = editors.hot[user]
            history = [
                doc["snapshot"]["name"]
                for doc in db.project_versions.find({"projectId": project_id})
            ]
            history.append(db.projects.find_one({"_id": project_id})["name"])
            seen = Counter(history)
            assert all(count == 1 for count in seen.values()), "an update was applied twice"
            acknowledged = [
                a.value
                for a in attempts
                if a.kind == "update" and a.user == user and a.status == 200
            ]
            lost_updates += sum(1 for name in acknowledged if seen[name] != 1)
        assert lost_updates == 0

        # Autosaves: every acknowledged marker is in the timeline once; repeats replay or
        # are refused as stale (412: the first attempt did not apply), never applied twice.
        lost_autosaves = 0
        for user in USERS:
            head = db.timelines.find_one({"_id": editors.hot[user]})
            markers = Counter(marker["id"] for marker in head["state"]["markers"])
            assert all(count == 1 for count in markers.values()), "an autosave was applied twice"
            acknowledged = [
                a.value
                for a in attempts
                if a.kind == "autosave" and a.user == user and a.status in {200, 204}
            ]
            lost_autosaves += sum(1 for marker in acknowledged if markers[marker] != 1)
            keys = Counter(
                doc["idempotencyKey"]
                for doc in db.timeline_revisions.find(
                    {"projectId": editors.hot[user], "idempotencyKey": {"$exists": True}},
                    {"idempotencyKey": 1},
                )
            )
            assert all(count == 1 for count in keys.values()), "one key made two revisions"
        assert lost_autosaves == 0
        for repeat in (r for r in repeats if r.kind == "autosave-retry"):
            assert repeat.status in {200, 204, 412}, repeat

    # Cached reads kept answering during the outage.
    during = [
        (status, cache) for at, status, cache in editors.reads if killed_at + 0.5 < at < back_at
    ]
    assert during, "no reads during the outage"
    assert all(status == 200 for status, _ in during), Counter(during)
    stale = sum(1 for _, cache in during if cache == "stale")
    assert stale > 0

    recovery = {
        kind: first_success_after(attempts, kind, back_at)
        for kind in ("create", "update", "autosave")
    }
    assert ready_after is not None
    assert ready_after <= RECOVERY_BOUND_S
    for kind, seconds in recovery.items():
        assert seconds is not None, f"no {kind} succeeded after the engine returned"
        assert seconds <= RECOVERY_BOUND_S, (kind, seconds)

    print(
        "\nengine outage:",
        json.dumps(
            {
                "outage_s": round(back_at - killed_at, 2),
                "writes_attempted": len(attempts),
                "writes_acknowledged": sum(1 for a in attempts if 200 <= a.status < 300),
                "writes_failed_503": len(failed),
                "writes_refused_412": sum(1 for a in attempts if a.status == 412),
                "writes_lost": lost_updates + lost_autosaves,
                "writes_applied_twice": 0,
                "retried_with_key": len(repeats),
                "reads_during_outage": len(during),
                "stale_reads_served": stale,
                "ready_after_return_s": round(ready_after, 2),
                "first_success_after_return_s": {k: round(v or 0, 2) for k, v in recovery.items()},
            }
        ),
    )


async def test_redis_killed_under_load_costs_no_request_anything(stack: Stack) -> None:
    """SIGKILL redis-server under concurrent editors, start it again: not one request
    fails, reads stay correct, and caching resumes by itself."""
    assert stack.redis is not None
    async with async_loopback_client(base_url=stack.base, timeout=15) as http:
        editors = Editors(http)
        await editors.seed()
        tasks = editors.workers()
        await asyncio.sleep(RUN_BEFORE_S)  # the steady stream, before the fault
        assert stack.redis.process is not None
        killed_at = time.monotonic()
        stack.redis.process.send_signal(signal.SIGKILL)
        stack.redis.process.wait()
        await until(
            lambda: (
                time.monotonic() - killed_at >= OUTAGE_S
                and any(at > killed_at + 0.5 for at, _, _ in editors.reads)
            ),
            what="reads answered during the Redis outage",
            deadline_s=OUTAGE_S + DEADLINE_S,
            interval_s=0.1,
        )
        await asyncio.to_thread(stack.redis.start)
        back_at = time.monotonic()
        # Run on for RUN_AFTER_S, and until caching is seen to resume (its time is asserted
        # below).
        await until(
            lambda: (
                time.monotonic() - back_at >= RUN_AFTER_S
                and any(at > back_at and cache == "hit" for at, _, cache in editors.reads)
                and "cache recovered" in stack.service.output()
            ),
            what="a cache hit and 'cache recovered' after Redis returned",
            deadline_s=RUN_AFTER_S + DEADLINE_S,
            interval_s=0.1,
        )
        editors.stop.set()
        await asyncio.gather(*tasks)
        # Every read now equals the database.
        for user in USERS:
            for project_id in (editors.hot[user], editors.cold[user]):
                response = await http.get(
                    f"/api/v1/projects/{project_id}", headers=Editors.who(user)
                )
                for db in database(stack):
                    stored = db.projects.find_one({"_id": project_id})
                assert response.json()["version"] == stored["version"]
                assert response.json()["name"] == stored["name"]

    statuses = Counter(a.status for a in editors.attempts)
    # 412 only after a write this same client saw fail: with Redis down nothing failed.
    assert set(statuses) <= {200, 201, 204}, statuses
    assert all(status == 200 for _, status, _ in editors.reads)
    during = [cache for at, _, cache in editors.reads if killed_at + 0.5 < at < back_at]
    after = [cache for at, _, cache in editors.reads if at > back_at]
    assert set(during) == {"bypass"}, Counter(during)
    resumed = [at for at, _, cache in editors.reads if at > back_at and cache == "hit"]
    assert resumed, "caching never resumed"
    resumed_after = min(resumed) - back_at
    assert resumed_after <= 3  # probes back off to at most 2 s
    log = stack.service.output()
    assert log.count("cache unavailable; requests go to the database") == 1
    assert "cache recovered" in log
    print(
        "\nredis outage:",
        json.dumps(
            {
                "outage_s": round(back_at - killed_at, 2),
                "writes_attempted": len(editors.attempts),
                "writes_failed": sum(1 for a in editors.attempts if a.status >= 500),
                "reads": len(editors.reads),
                "reads_failed": sum(1 for _, status, _ in editors.reads if status != 200),
                "reads_bypassing_cache_during_outage": len(during),
                "cache_hits_after_return": sum(1 for cache in after if cache == "hit"),
                "caching_resumed_after_s": round(resumed_after, 2),
            }
        ),
    )
