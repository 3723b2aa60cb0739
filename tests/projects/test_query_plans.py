"""Every query behind the project and timeline routes is served by an index, with 10,000
projects loaded.

The test records every command the app sends while a user works through the whole
projects API (and the retention sweep runs). On a real MongoDB (`SNIPIX_TEST_MONGODB_URI`)
it asks the server to `explain` each one: the winning plan must contain no COLLSCAN. On
the embedded engine `explain` describes a plan the engine builds for explain alone, so
the test looks at what actually ran instead: the engine records every SQL statement it
executes (`SNIPIX_ENGINE_SQL_TRACE`), and SQLite's own `EXPLAIN QUERY PLAN` of each one
must not visit a whole collection (tests/db/sql_plans.py). Reads must also carry a
projection and a limit.
"""

from __future__ import annotations

import json
import os
import random
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import MongoClient
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from snipix.app import create_app
from snipix.cache.service import Cache
from snipix.catalogue import PURGED
from snipix.db.client import connected
from snipix.db.engine import SQL_TRACE_ENV
from snipix.db.engine_record import DATA_FILE
from snipix.db.launcher import start_engine_process
from snipix.db.leases import Lease
from snipix.db.transactions import UnitOfWork
from snipix.projects.retention import RetentionJob
from snipix.projects.service import project_service
from snipix.settings import Settings
from tests.conftest import TEST_URI_VARIABLE
from tests.db.sql_plans import collection_scans, read_trace
from tests.support import clean_env, running_app, sync_mongo_client
from tests.transcripts.test_endpoints import make_transcript

pytestmark = pytest.mark.process


@pytest.fixture
def database_name(empty_database_name: str) -> str:
    """A database on this module's tracing engine (the session's pool is on another)."""
    return empty_database_name


USERS = 100
# The user user007's project is shared with (a seeded user: their own projects are listed
# beside it).
MEMBER = "user008"
PROJECTS = 10_000
STATUSES = ("draft", "editing", "rendering", "ready", "archived")
WORDS = ("wedding", "holiday", "interview", "podcast", "trailer", "tutorial", "vlog", "launch")

# Commands that read or change documents chosen by a filter.
QUERY_COMMANDS = {"find", "findAndModify", "update", "delete", "count", "aggregate"}
# Session and transaction plumbing the driver adds; not part of the query shape.
PLUMBING = {
    "lsid",
    "txnNumber",
    "autocommit",
    "startTransaction",
    "$clusterTime",
    "$db",
    "readConcern",
    "writeConcern",
    "$readPreference",
    "ordered",
    "bypassDocumentValidation",
}


class Recorder(CommandListener):
    """Every command the app sends, as the driver sent it."""

    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.recording = False

    def started(self, event: CommandStartedEvent) -> None:
        if self.recording and event.command_name in QUERY_COMMANDS:
            with self._lock:
                self.commands.append(dict(event.command))

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


def project_document(index: int, now: datetime) -> dict[str, Any]:
    rng = random.Random(index)  # noqa: S311 - reproducible test data, not secrets
    created = now - timedelta(minutes=index)
    deleted = index % 10 == 0
    return {
        "_id": f"seed{index:05d}",
        "userId": f"user{index % USERS:03d}",
        "name": f"{rng.choice(WORDS)} {index}",
        "description": f"{rng.choice(WORDS)} footage",
        "status": STATUSES[index % len(STATUSES)],
        "tags": [rng.choice(WORDS)],
        "media": None,
        "createdAt": created,
        "updatedAt": created + timedelta(seconds=rng.randint(0, 3600)),
        "version": 1,
        "isDeleted": deleted,
        "deletedAt": created + timedelta(hours=1) if deleted else None,
    }


class Engine:
    """The database of this module: a real server, or an embedded engine of its own that
    records every SQL statement it runs."""

    def __init__(self, uri: str, data_dir: Path | None) -> None:
        self.uri = uri
        self.data_dir = data_dir

    @property
    def trace(self) -> Path:
        assert self.data_dir is not None
        return self.data_dir.parent / "statements.jsonl"

    def trace_size(self) -> int:
        return self.trace.stat().st_size if self.data_dir is not None else 0


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    configured = os.environ.get(TEST_URI_VARIABLE)
    if configured:
        yield Engine(configured, None)
        return
    root = tmp_path_factory.mktemp("traced")
    data_dir = root / "data"
    data_dir.mkdir()
    process = start_engine_process(
        data_dir, env=clean_env(**{SQL_TRACE_ENV: str(root / "statements.jsonl")})
    )
    try:
        yield Engine(process.uri, data_dir)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def mongodb_uri(engine: Engine) -> str:
    return engine.uri


@pytest.fixture(scope="module")
def mongo(mongodb_uri: str) -> Iterator[MongoClient[dict[str, Any]]]:
    client = sync_mongo_client(mongodb_uri)
    yield client
    client.close()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def app(settings: Settings, recorder: Recorder) -> FastAPI:
    # Snapshots every 2 versions, so rebuilding a past version reads one. No in-app
    # retention job: `sweep` runs it explicitly, and one starting a minute in would purge
    # the 1,000 seeded deletions while the app shuts down (past the 60 s shutdown timeout).
    frequent = settings.model_copy(update={"timeline_snapshot_every": 2, "retention_interval_s": 0})
    return create_app(frequent, command_listeners=[recorder])


@pytest.fixture
async def loaded(
    app: FastAPI, settings: Settings, mongo: MongoClient[dict[str, Any]]
) -> AsyncIterator[httpx.AsyncClient]:
    """The app, started (validator and indexes in place), with 10,000 projects of 100 users."""
    async with running_app(app) as http:
        now = datetime.now(UTC) - timedelta(days=60)
        documents = [project_document(i, now) for i in range(PROJECTS)]
        mongo[settings.database_name]["projects"].insert_many(documents)
        # An account a project can be shared with.
        mongo[settings.database_name]["users"].insert_one(
            {"_id": MEMBER, "email": f"{MEMBER}@example.com", "name": "Member", "status": "active"}
        )
        yield http


def headers(user: str, *, admin: bool = False, version: int | None = None) -> dict[str, str]:
    result = {"X-User-Id": user}
    if admin:
        result["X-User-Roles"] = "admin"
    if version is not None:
        result["If-Match"] = f'"{version}"'
    return result


async def use_every_route(http: httpx.AsyncClient) -> None:
    """One user's session touching every project route, plus an admin's."""
    user = headers("user007")
    admin = headers("ops", admin=True)

    async def ok(response: httpx.Response) -> dict[str, Any]:
        assert response.status_code < 300, response.text
        return response.json() if response.content else {}

    project = await ok(
        await http.post(
            "/api/v1/projects", json={"name": "Plan test", "tags": ["vlog"]}, headers=user
        )
    )
    path = f"/api/v1/projects/{project['id']}"
    await ok(await http.get(path, headers=user))
    for params in (
        {"limit": "5"},
        {"sort": "createdAt", "limit": "5"},
        {"status": "ready"},
        {"tag": "holiday"},
        {"q": "wedding"},
        {"q": "wedding footage", "status": "draft", "tag": "vlog"},
    ):
        page = await ok(await http.get("/api/v1/projects", params=params, headers=user))
        if page["nextCursor"]:
            await ok(
                await http.get(
                    "/api/v1/projects",
                    params={**params, "cursor": page["nextCursor"]},
                    headers=user,
                )
            )
    await ok(
        await http.patch(path, json={"name": "Renamed"}, headers=headers("user007", version=1))
    )
    await ok(await http.patch(path, json={"tags": ["a"]}, headers=headers("user007", version=2)))
    versions = await ok(await http.get(f"{path}/versions", params={"limit": "1"}, headers=user))
    await ok(
        await http.get(f"{path}/versions", params={"cursor": versions["nextCursor"]}, headers=user)
    )
    await ok(await http.get(f"{path}/versions/1", headers=user))
    await ok(await http.post(f"{path}/rollback", json={"version": 1}, headers=user))
    audit = await ok(await http.get(f"{path}/audit", params={"limit": "2"}, headers=user))
    await ok(await http.get(f"{path}/audit", params={"cursor": audit["nextCursor"]}, headers=user))
    await use_sharing(http, path, user, ok)
    await use_the_timeline(http, path, user, ok)
    await use_the_session(http, path, user, ok)
    await use_the_transcript(http, path, user, ok)
    await ok(await http.delete(path, headers=user))
    await ok(await http.delete(path, headers=user))
    await ok(await http.post(f"{path}/restore", headers=user))
    await ok(await http.delete(path, headers=user))
    deleted = await ok(
        await http.get("/api/v1/admin/projects/deleted", params={"limit": "3"}, headers=admin)
    )
    await ok(
        await http.get(
            "/api/v1/admin/projects/deleted",
            params={"cursor": deleted["nextCursor"]},
            headers=admin,
        )
    )
    for params in (
        {},
        {"userId": "user007"},
        {"entityId": project["id"]},
        {"action": "project.updated"},
        {"since": "2020-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"},
    ):
        await ok(await http.get("/api/v1/admin/audit", params=params, headers=admin))
    await ok(await http.delete(f"/api/v1/admin/projects/{project['id']}", headers=admin))


async def use_sharing(
    http: httpx.AsyncClient,
    project_path: str,
    user: dict[str, str],
    ok: Callable[[httpx.Response], Awaitable[dict[str, Any]]],
) -> None:
    """Every member route, and the member's reads: the project through the access check,
    the list (own and shared merged, each role filter, pages) and search."""
    members = f"{project_path}/members"
    member = headers(MEMBER)
    await ok(await http.post(members, json={"userId": MEMBER, "role": "editor"}, headers=user))
    await ok(await http.get(members, headers=member))
    await ok(await http.get(project_path, headers=member))
    await ok(await http.patch(f"{members}/{MEMBER}", json={"role": "viewer"}, headers=user))
    await ok(await http.get(f"{project_path}/timeline", headers=member))
    for params in (
        {"limit": "5"},
        {"role": "shared"},
        {"role": "viewer", "sort": "createdAt"},
        {"role": "owner", "status": "ready"},
        {"q": "plan"},
        {"q": "wedding", "role": "shared"},
    ):
        page = await ok(await http.get("/api/v1/projects", params=params, headers=member))
        if page["nextCursor"]:
            await ok(
                await http.get(
                    "/api/v1/projects",
                    params={**params, "cursor": page["nextCursor"]},
                    headers=member,
                )
            )
    await ok(await http.delete(f"{members}/{MEMBER}", headers=user))
    await ok(
        await http.post(
            members, json={"email": f"{MEMBER}@example.com", "role": "viewer"}, headers=user
        )
    )


async def use_the_timeline(
    http: httpx.AsyncClient,
    project_path: str,
    user: dict[str, str],
    ok: Callable[[httpx.Response], Awaitable[dict[str, Any]]],
) -> None:
    """Every timeline route: save, autosave (with a key, then its replay), a stale autosave
    merged, history, rebuilding a past version from a snapshot, undo, redo, rollback,
    export."""
    path = f"{project_path}/timeline"
    track = {"id": "v1", "kind": "video"}
    clip = {"id": "c1", "trackId": "v1", "start": 0, "sourceIn": 0, "sourceOut": 2}
    await ok(await http.get(path, headers=user))
    await ok(
        await http.put(
            path,
            json={"state": {"tracks": [track], "clips": [clip]}},
            headers={**user, "If-Match": '"0"'},
        )
    )
    for version in range(1, 4):
        await ok(
            await http.patch(
                path,
                content=json.dumps([{"op": "replace", "path": "/clips/0/start", "value": version}]),
                headers={
                    **user,
                    "If-Match": f'"{version}"',
                    "Content-Type": "application/json-patch+json",
                    "Idempotency-Key": f"k{version}",
                },
            )
        )
    replay = [{"op": "replace", "path": "/clips/0/start", "value": 3}]
    await ok(
        await http.patch(
            path,
            content=json.dumps(replay),
            headers={
                **user,
                "If-Match": '"3"',
                "Content-Type": "application/json-patch+json",
                "Idempotency-Key": "k3",
            },
        )
    )
    # A stale autosave (made on version 2, disjoint from 3 and 4): merged over them.
    merged = await http.patch(
        path,
        content=json.dumps([{"op": "replace", "path": "/clips/0/sourceOut", "value": 3}]),
        headers={**user, "If-Match": '"2"', "Content-Type": "application/json-patch+json"},
    )
    await ok(merged)
    assert merged.headers["X-Merged-Over"] == "3-4"
    history = await ok(await http.get(f"{path}/history", params={"limit": "2"}, headers=user))
    await ok(
        await http.get(f"{path}/history", params={"cursor": history["nextCursor"]}, headers=user)
    )
    await ok(await http.get(f"{path}/versions/3", headers=user))
    await ok(await http.post(f"{path}/undo", headers=user))
    await ok(await http.post(f"{path}/redo", headers=user))
    await ok(await http.post(f"{path}/rollback", json={"version": 1}, headers=user))
    export = await http.get(f"{path}/export", params={"version": "2"}, headers=user)
    assert export.status_code == 200


async def use_the_transcript(
    http: httpx.AsyncClient,
    project_path: str,
    user: dict[str, str],
    ok: Callable[[httpx.Response], Awaitable[dict[str, Any]]],
) -> None:
    """Every transcript route: upload (buckets), header, a window, pages, an edit, a split
    and a merge, search in the project and across the user's transcripts, cuts, delete."""
    path = f"{project_path}/transcript"
    payload = make_transcript(3_000)
    json_headers = {**user, "Content-Type": "application/json"}
    await ok(await http.put(path, content=json.dumps(payload), headers=json_headers))
    header = await ok(await http.get(path, headers=user))
    end = float(payload["segments"][-1]["end"])
    await ok(
        await http.get(
            f"{path}/segments", params={"from": str(end / 2), "to": str(end / 2 + 60)}, headers=user
        )
    )
    page = await ok(await http.get(f"{path}/segments", params={"limit": "20"}, headers=user))
    await ok(
        await http.get(
            f"{path}/segments", params={"limit": "20", "cursor": page["nextCursor"]}, headers=user
        )
    )
    segment = f"{path}/segments/s000040"
    version = int(header["version"])
    await ok(
        await http.patch(
            segment, json={"text": "edited"}, headers={**user, "If-Match": f'"{version}"'}
        )
    )
    await ok(
        await http.post(
            f"{segment}/split", json={"atWord": 2}, headers={**user, "If-Match": f'"{version + 1}"'}
        )
    )
    await ok(
        await http.post(
            f"{segment}/merge", json={}, headers={**user, "If-Match": f'"{version + 2}"'}
        )
    )
    await ok(await http.get(f"{path}/search", params={"q": "colourist"}, headers=user))
    await ok(await http.get("/api/v1/transcripts/search", params={"q": "colourist"}, headers=user))
    await ok(await http.delete(path, headers=user))


async def use_the_session(
    http: httpx.AsyncClient,
    project_path: str,
    user: dict[str, str],
    ok: Callable[[httpx.Response], Awaitable[dict[str, Any]]],
) -> None:
    """Every session route: read before the first open, save (insert, then replace), and
    the recent list across pages (a seeded project of user007 opened too)."""
    path = f"{project_path}/session"
    await ok(await http.get(path, headers=user))
    session = {"playheadSec": 1.5, "zoom": 2, "selectedClipIds": ["c1"], "panel": "timeline"}
    await ok(await http.put(path, json=session, headers=user))
    await ok(await http.put(path, json={**session, "playheadSec": 3}, headers=user))
    await ok(await http.put("/api/v1/projects/seed00007/session", json={}, headers=user))
    recent = await ok(
        await http.get("/api/v1/sessions/recent", params={"limit": "1"}, headers=user)
    )
    assert recent["nextCursor"] is not None
    await ok(
        await http.get(
            "/api/v1/sessions/recent", params={"cursor": recent["nextCursor"]}, headers=user
        )
    )


async def sweep(settings: Settings, recorder: Recorder) -> None:
    """The retention sweep, as `snipix retention run` and the service run it."""
    async with connected(settings, [recorder]) as client:
        db = client[settings.database_name]
        job = RetentionJob(
            project_service(db, UnitOfWork(client), owned=PURGED, cache=Cache.disabled()),
            Lease(db, "retention", ttl=timedelta(minutes=1)),
            retention=timedelta(days=30),
        )
        due = await job.run(dry_run=True)
        assert due is not None
        assert due.count > 0
        # A moment at which only the oldest few seeded deletions are past the window.
        purged = await job.run(now=datetime.now(UTC) - timedelta(days=30, minutes=9_880))
        assert purged is not None
        assert 0 < purged.count < due.count


def shape(command: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in command.items() if key not in PLUMBING}


def statements(command: dict[str, Any]) -> list[tuple[dict[str, Any], Any, Any]]:
    """(filter, sort, hint) of each statement in a command."""
    name = next(iter(command))
    if name == "find":
        return [(command.get("filter", {}), command.get("sort"), command.get("hint"))]
    if name == "findAndModify":
        return [(command.get("query", {}), command.get("sort"), command.get("hint"))]
    if name == "update":
        return [(u["q"], None, u.get("hint")) for u in command["updates"]]
    if name == "delete":
        return [(d["q"], None, d.get("hint")) for d in command["deletes"]]
    if name == "count":
        return [(command.get("query", {}), None, command.get("hint"))]
    match = command["pipeline"][0].get("$match", {}) if command["pipeline"] else {}
    return [(match, None, command.get("hint"))]


def stages(plan: Any) -> list[str]:
    """Every stage name in a MongoDB explain plan tree."""
    found: list[str] = []
    if isinstance(plan, dict):
        if "stage" in plan:
            found.append(str(plan["stage"]))
        for value in plan.values():
            found += stages(value)
    elif isinstance(plan, list):
        for item in plan:
            found += stages(item)
    return found


def index_problem(explained: dict[str, Any]) -> str | None:
    """Why a real server would not serve this command from an index, or None."""
    plans = stages(explained["queryPlanner"].get("winningPlan", {}))
    return f"winning plan has a COLLSCAN: {plans}" if "COLLSCAN" in plans else None


# Loading 10,000 projects takes ~2 minutes on the embedded engine; on a busy 2-core
# machine (CI running beside other work) past pytest's 300 s default.
@pytest.mark.timeout(900)
async def test_every_request_query_is_served_by_an_index(
    loaded: httpx.AsyncClient,
    recorder: Recorder,
    settings: Settings,
    mongo: MongoClient[dict[str, Any]],
    engine: Engine,
) -> None:
    """With 10,000 projects of 100 users, no query behind any project route (or the
    retention sweep) scans a collection, and every read is projected and limited."""
    traced_from = engine.trace_size()
    recorder.recording = True
    await use_every_route(loaded)
    await sweep(settings, recorder)
    recorder.recording = False

    db = mongo[settings.database_name]
    problems: list[str] = []
    seen: set[str] = set()
    for command in recorder.commands:
        query = shape(command)
        name = next(iter(query))
        if query.get(name) in {"migrations", "leases"}:
            continue
        key = repr(sorted((k, repr(v)) for k, v in query.items() if k != "cursor"))
        if key in seen:
            continue
        seen.add(key)
        if name == "find":
            if "projection" not in query:
                problems.append(f"{query}: no projection")
            if "limit" not in query and not query.get("singleBatch"):
                problems.append(f"{query}: no limit")
        if engine.data_dir is None:
            explained = db.command({"explain": query, "verbosity": "queryPlanner"})
            problem = index_problem(explained)
            if problem is not None:
                problems.append(f"{name} on {query.get(name)}: {problem}\n  {query}")
    assert len(seen) >= 20, f"too few query shapes recorded: {len(seen)}"
    if engine.data_dir is not None:
        executed = read_trace(engine.trace, start=traced_from)
        assert len(executed) > 100, f"too few statements traced: {len(executed)}"
        for scan in collection_scans(executed, engine.data_dir / DATA_FILE):
            problems.append(f"the engine visited a whole collection: {scan}")
    assert not problems, "\n".join(problems)
