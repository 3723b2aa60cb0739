"""The timeline never loses or doubles acknowledged work across restarts and crashes.

Real processes and real signals: `snipix serve` stopped with SIGTERM and started again; a
dedicated engine process SIGKILLed after a change is planned and before its head commit
(through the service's `before_commit` seam) or just after the head commit, then started
again on the same port and data directory while the app keeps running.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import MongoClient
from pymongo.database import Database as SyncDatabase
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from snipix.api.routes.timelines import get_timeline_service
from snipix.app import create_app
from snipix.catalogue import PURGED
from snipix.db.engine_record import EngineRecord
from snipix.db.launcher import EngineProcess, start_engine_process
from snipix.db.monitoring import Listener
from snipix.projects.service import project_service
from snipix.resources import ResourcesDep
from snipix.settings import Settings
from snipix.timelines.repository import TimelineRepository
from snipix.timelines.service import TimelineService
from tests.support import (
    Clock,
    SnipixProcess,
    clean_env,
    free_port,
    http_status,
    loopback_client,
    pid_alive,
    running_app,
    wait_until,
)
from tests.timelines.recorded import recorded

pytestmark = pytest.mark.process

OWNER = {"X-User-Id": "editor-1"}
PATCH_TYPE = {"Content-Type": "application/json-patch+json"}
# A claim left by a killed request is taken over after this long.
DATABASE = "durability"
SyncDb = SyncDatabase[dict[str, Any]]


def clip(clip_id: str, start: float, length: float = 2.0, track: str = "v1") -> dict[str, Any]:
    return {
        "id": clip_id,
        "trackId": track,
        "mediaRef": "media/interview.mp4",
        "start": start,
        "sourceIn": 10.0,
        "sourceOut": 10.0 + length,
    }


STATE: dict[str, Any] = {
    "tracks": [{"id": "v1", "kind": "video", "name": "Main"}, {"id": "a1", "kind": "audio"}],
    "clips": [clip("c1", 0.0), clip("c2", 3.0), clip("c3", 0.0, track="a1")],
    "markers": [{"id": "m1", "time": 1.5, "label": "Intro", "color": "red"}],
}
MOVE_C2 = [{"op": "replace", "path": "/clips/1/start", "value": 7.5}]
ADD_C9 = [{"op": "add", "path": "/clips/-", "value": clip("c9", 20.0)}]
RENAME_MARKER = [{"op": "replace", "path": "/markers/0/label", "value": "Opening"}]
ADD_C8 = [{"op": "add", "path": "/clips/-", "value": clip("c8", 30.0, track="a1")}]


def if_match(version: int) -> dict[str, str]:
    return {"If-Match": f'"{version}"'}


def patch_headers(version: int, **extra: str) -> dict[str, str]:
    return {**OWNER, **PATCH_TYPE, **if_match(version), **extra}


# --- `snipix serve` as a user runs it (small copies of the helpers in tests/test_cli.py) ---


def serve_embedded(
    tmp_path: Path, data_dir: Path, name: str, **env: str
) -> tuple[SnipixProcess, str, EngineRecord]:
    """`snipix serve` on the embedded default, ready, with the engine it started."""
    port = free_port()
    service = SnipixProcess(
        ["serve", "--port", str(port)],
        env=clean_env(SNIPIX_DATA_DIR=str(data_dir), **env),
        cwd=tmp_path,
        log_path=tmp_path / f"{name}.log",
    ).start()
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if service.process is not None and service.process.poll() is not None:
            raise AssertionError(f"snipix serve exited early:\n{service.output()}")
        return http_status(f"{base}/health/ready") == 200

    try:
        wait_until(ready, timeout_s=60, what="/health/ready to answer 200")
    except BaseException:
        service.kill()
        raise
    engine = EngineRecord.read(data_dir)
    assert engine is not None
    return service, base, engine


def test_the_timeline_history_and_undo_survive_a_full_restart(tmp_path: Path) -> None:
    """After `snipix serve` is stopped and started again, the editor reopens exactly the
    last saved timeline, the same history and past versions, and undo/redo carry on."""
    data_dir = tmp_path / "data"
    # Snapshots every 2 versions, so rebuilding past versions after the restart reads them.
    env = {"SNIPIX_TIMELINE_SNAPSHOT_EVERY": "2"}
    service, base, first_engine = serve_embedded(tmp_path, data_dir, "serve", **env)
    try:
        with loopback_client(base_url=base, headers=OWNER, timeout=15) as http:
            created = http.post("/api/v1/projects", json={"name": "Restart cut"})
            assert created.status_code == 201, created.text
            path = f"{created.headers['Location']}/timeline"
            states: dict[int, dict[str, Any]] = {0: http.get(path).json()["state"]}
            saved = http.put(path, json={"state": STATE}, headers=if_match(0))
            assert saved.status_code == 200, saved.text
            states[1] = saved.json()["state"]
            for version, operations in enumerate((MOVE_C2, ADD_C9, RENAME_MARKER), start=1):
                edited = http.patch(
                    path,
                    content=json.dumps(operations),
                    headers={**PATCH_TYPE, **if_match(version)},
                )
                assert edited.status_code == 200, edited.text
                assert edited.headers["ETag"] == f'"{version + 1}"'
                states[version + 1] = edited.json()["state"]
            last = http.post(f"{path}/undo", headers=if_match(4))
            assert last.status_code == 200, last.text
            assert last.headers["ETag"] == '"5"'
            assert last.json()["state"] == states[3]
            states[5] = states[3]
            before = http.get(path)
            history_before = http.get(f"{path}/history", params={"limit": "50"}).json()
            versions_before = {v: http.get(f"{path}/versions/{v}").json() for v in range(6)}
        assert service.stop() == 0, service.output()
    finally:
        service.kill()
    wait_until(lambda: not pid_alive(first_engine.pid), timeout_s=15, what="the engine to stop")

    service, base, second_engine = serve_embedded(tmp_path, data_dir, "serve-again", **env)
    try:
        assert second_engine.pid != first_engine.pid
        with loopback_client(base_url=base, headers=OWNER, timeout=15) as http:
            loaded = http.get(path)
            assert loaded.status_code == 200, loaded.text
            assert loaded.headers["ETag"] == last.headers["ETag"] == '"5"'
            acknowledged = last.json()
            for key in ("version", "state", "durationSec", "canUndo", "canRedo"):
                assert loaded.json()[key] == acknowledged[key], key
            assert loaded.json() == before.json()
            assert loaded.json()["canRedo"] is True

            history = http.get(f"{path}/history", params={"limit": "50"}).json()
            assert history == history_before
            assert [item["version"] for item in history["items"]] == [5, 4, 3, 2, 1]
            for version, expected in versions_before.items():
                past = http.get(f"{path}/versions/{version}")
                assert past.status_code == 200, past.text
                assert past.json() == expected
                assert past.json()["state"] == states[version]

            redone = http.post(f"{path}/redo", headers=if_match(5))
            assert redone.status_code == 200, redone.text
            assert redone.headers["ETag"] == '"6"'
            assert redone.json()["state"] == states[4], "redo re-applies the undone edit"
            assert redone.json()["canRedo"] is False
            undone = http.post(f"{path}/undo", headers=if_match(6))
            assert undone.status_code == 200, undone.text
            assert undone.json()["state"] == states[3]
            undone_again = http.post(f"{path}/undo", headers=if_match(7))
            assert undone_again.status_code == 200, undone_again.text
            assert undone_again.json()["state"] == states[2]
            assert http.get(path).json()["state"] == states[2]
            kinds = [
                item["kind"]
                for item in http.get(f"{path}/history", params={"limit": "50"}).json()["items"]
            ]
            assert kinds == ["undo", "undo", "redo", "undo", "patch", "patch", "patch", "save"]
    finally:
        service.stop()


# --- the app in-process against a dedicated engine that the tests kill and restart ---------


@dataclass
class Engine:
    """`snipix engine` on a fixed port and data directory, so it can come back identically."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    process: EngineProcess | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self) -> None:
        self.process = start_engine_process(
            self.data_dir, port=self.port, env=clean_env(), timeout_s=30
        )
        assert self.process.record.port == self.port

    def kill(self) -> None:
        """SIGKILL: no chance to close anything, as in a crash or an OOM kill."""
        assert self.process is not None
        os.kill(self.process.process.pid, signal.SIGKILL)
        self.process.process.wait(timeout=10)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.process.poll() is None

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    @contextmanager
    def inspect(self) -> Iterator[SyncDb]:
        """A separate client, to look at what the engine really holds."""
        client: MongoClient[dict[str, Any]] = MongoClient(
            self.uri, serverSelectionTimeoutMS=5000, tz_aware=True
        )
        try:
            yield client[DATABASE]
        finally:
            client.close()


@dataclass
class KillSwitch:
    """The engine dies at the next armed moment, once."""

    engine: Engine
    armed: bool = False
    fired: int = 0
    # The timeline service's clock.
    clock: Clock = field(default_factory=Clock)

    def fire(self) -> None:
        if self.armed:
            self.armed = False
            self.fired += 1
            self.engine.kill()

    async def before_commit(self) -> None:
        """The service's seam: the change planned, its head commit not sent."""
        self.fire()


class KillAfterCommit(CommandListener):
    """Kills the engine as soon as it has acknowledged a head commit (the update that moves
    the head's version): the change is saved, nothing after it reaches the database."""

    def __init__(self, switch: KillSwitch) -> None:
        self.switch = switch
        self._commits: set[int] = set()

    def started(self, event: CommandStartedEvent) -> None:
        command = event.command
        if event.command_name == "update" and command.get("update") == "timelines":
            updates = command.get("updates") or [{}]
            if "version" in updates[0].get("u", {}).get("$set", {}):
                self._commits.add(event.request_id)

    def succeeded(self, event: CommandSucceededEvent) -> None:
        if event.request_id in self._commits:
            self._commits.discard(event.request_id)
            self.switch.fire()

    def failed(self, event: CommandFailedEvent) -> None:
        self._commits.discard(event.request_id)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    started = Engine(tmp_path / "engine-data")
    started.start()
    try:
        yield started
    finally:
        started.stop()


def crash_app(
    engine: Engine,
    switch: KillSwitch,
    tmp_path: Path,
    *,
    snapshot_every: int = 50,
    listeners: Sequence[Listener] = (),
) -> FastAPI:
    """The real app, whose timeline service kills the engine when `switch` is armed."""
    settings = Settings(
        _env_file=None,
        mongodb_uri=engine.uri,
        mongodb_database=DATABASE,
        data_dir=tmp_path / "unused",
        log_format="json",
        timeline_snapshot_every=snapshot_every,
        # Long enough for the first hello on a loaded machine (1 s failed once in CI).
        mongodb_server_selection_timeout_ms=3000,
        mongodb_connect_timeout_ms=1000,
        health_timeout_ms=500,
        retention_interval_s=0,
    )
    app = create_app(settings, command_listeners=listeners)

    def crashing_timeline_service(resources: ResourcesDep) -> TimelineService:
        # Built exactly as `get_timeline_service` builds it, plus the seam.
        return TimelineService(
            TimelineRepository(resources.db),
            project_service(resources.db, resources.unit, owned=PURGED, cache=resources.cache),
            resources.cache,
            max_bytes=resources.settings.timeline_max_bytes,
            snapshot_every=resources.settings.timeline_snapshot_every,
            before_commit=switch.before_commit,
            deferred=resources.deferred,
            clock=switch.clock,
        )

    app.dependency_overrides[get_timeline_service] = crashing_timeline_service
    return app


async def new_timeline(http: httpx.AsyncClient) -> tuple[str, str]:
    """A new project's timeline path and project id."""
    created = await http.post("/api/v1/projects", json={"name": "Crash cut"}, headers=OWNER)
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    return f"{location}/timeline", location.rsplit("/", 1)[1]


async def send_patch(
    http: httpx.AsyncClient, path: str, operations: list[dict[str, Any]], version: int, **extra: str
) -> httpx.Response:
    return await http.patch(
        path, content=json.dumps(operations), headers=patch_headers(version, **extra)
    )


async def wait_ready(http: httpx.AsyncClient, timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if (await http.get("/health/ready")).status_code == 200:
                return
            await asyncio.sleep(0.1)


async def restart_after_crash(switch: KillSwitch, http: httpx.AsyncClient) -> None:
    """The engine back on the same port and data dir, the app using it."""
    assert not switch.engine.alive
    switch.engine.start()
    await wait_ready(http)


def assert_not_acknowledged(response: httpx.Response) -> None:
    """A clear 503 the editor can retry on: nothing claims the change was saved.

    The connection broke mid-change, so the service cannot know whether the server applied
    the write it was sending: it says so, and how to retry safely (the tests below check
    what actually happened: nothing was saved)."""
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "database_unavailable"
    message = response.json()["error"]["message"]
    assert message.startswith("The project database stopped answering while saving")
    assert "same Idempotency-Key, or reload first" in message
    assert "Retry-After" in response.headers
    assert "ETag" not in response.headers


@pytest.mark.parametrize("snapshot_every", [50, 3], ids=["no-snapshot", "snapshot-due"])
async def test_a_change_killed_before_its_head_commit_is_not_saved_and_is_overwritten(
    engine: Engine, tmp_path: Path, snapshot_every: int
) -> None:
    """An edit cut off by a database crash is reported as not saved; after the restart the
    editor sees the previous version, and the next edit at that version is the one kept."""
    switch = KillSwitch(engine)
    app = crash_app(engine, switch, tmp_path, snapshot_every=snapshot_every)
    async with running_app(app) as http:
        path, project_id = await new_timeline(http)
        assert (
            await http.put(path, json={"state": STATE}, headers={**OWNER, **if_match(0)})
        ).is_success
        assert (await send_patch(http, path, MOVE_C2, 1)).status_code == 200
        before = await http.get(path, headers=OWNER)
        history_before = (await http.get(f"{path}/history", headers=OWNER)).json()

        switch.armed = True
        killed = await send_patch(http, path, ADD_C9, 2)
        assert switch.fired == 1, "the seam ran once"
        assert not engine.alive
        assert_not_acknowledged(killed)

        await restart_after_crash(switch, http)
        with engine.inspect() as db:
            leftover = db["timeline_revisions"].find_one({"projectId": project_id, "version": 3})
            assert leftover is None, "nothing of the change was written"
            snapshot = db["timeline_snapshots"].find_one({"projectId": project_id, "version": 3})
            assert snapshot is None
            stored_head = db["timelines"].find_one({"_id": project_id})
            assert stored_head is not None
            assert stored_head["version"] == 2

        after = await http.get(path, headers=OWNER)
        assert after.status_code == 200
        assert after.headers["ETag"] == before.headers["ETag"] == '"2"'
        assert after.json() == before.json()
        history = (await http.get(f"{path}/history", headers=OWNER)).json()
        assert history == history_before
        assert history["items"][0]["version"] == after.json()["version"] == 2
        invisible = await http.get(f"{path}/versions/3", headers=OWNER)
        assert invisible.status_code == 404, invisible.text
        assert invisible.json()["error"]["code"] == "not_found"

        kept = await send_patch(http, path, RENAME_MARKER, 2)
        assert kept.status_code == 200, kept.text
        assert kept.headers["ETag"] == '"3"'
        head = (await http.get(path, headers=OWNER)).json()
        assert head["state"] == kept.json()["state"]
        assert head["state"]["markers"][0]["label"] == "Opening"
        assert [c["id"] for c in head["state"]["clips"]] == ["c1", "c2", "c3"], "no c9"
        with engine.inspect() as db:
            revisions = [r for r in recorded(db, project_id) if r["version"] == 3]
            assert len(revisions) == 1
            assert revisions[0]["patch"] == RENAME_MARKER, "the kept edit is version 3"
            if snapshot_every == 3:
                snapshot = db["timeline_snapshots"].find_one(
                    {"projectId": project_id, "version": 3}
                )
                assert snapshot is not None
                assert snapshot["state"] == head["state"], "version 3's snapshot is the kept edit"
        history = (await http.get(f"{path}/history", headers=OWNER)).json()
        assert [item["version"] for item in history["items"]] == [3, 2, 1]
        rebuilt = await http.get(f"{path}/versions/3", headers=OWNER)
        assert rebuilt.status_code == 200, rebuilt.text
        assert rebuilt.json()["state"] == head["state"]

        # One more edit: version 4 is rebuilt from version 3 (its snapshot when one is due).
        assert (await send_patch(http, path, ADD_C8, 3)).status_code == 200
        head = (await http.get(path, headers=OWNER)).json()
        rebuilt = await http.get(f"{path}/versions/4", headers=OWNER)
        assert rebuilt.json()["state"] == head["state"]
        undone = await http.post(f"{path}/undo", headers={**OWNER, **if_match(4)})
        assert undone.status_code == 200, undone.text
        assert undone.json()["state"] == kept.json()["state"]


async def test_an_autosave_killed_before_its_head_commit_applies_once_on_retry(
    engine: Engine, tmp_path: Path
) -> None:
    """An autosave cut off by a database crash, retried with the same Idempotency-Key once
    the database is back, is applied exactly once; retrying again returns the same answer."""
    switch = KillSwitch(engine)
    app = crash_app(engine, switch, tmp_path)
    key = {"Idempotency-Key": "autosave-crash-1"}
    async with running_app(app) as http:
        path, project_id = await new_timeline(http)
        assert (
            await http.put(path, json={"state": STATE}, headers={**OWNER, **if_match(0)})
        ).is_success

        switch.armed = True
        killed = await send_patch(http, path, MOVE_C2, 1, **key)
        assert switch.fired == 1
        assert_not_acknowledged(killed)

        await restart_after_crash(switch, http)
        retried = await send_patch(http, path, MOVE_C2, 1, **key)
        assert retried.status_code == 200, retried.text
        assert retried.headers["ETag"] == '"2"'
        assert retried.json()["state"]["clips"][1]["start"] == 7.5
        head = await http.get(path, headers=OWNER)
        assert head.json()["state"] == retried.json()["state"]
        assert head.headers["ETag"] == '"2"'

        replayed = await send_patch(http, path, MOVE_C2, 1, **key)
        assert replayed.status_code == 200, replayed.text
        assert replayed.headers["ETag"] == retried.headers["ETag"]
        assert replayed.json()["state"] == retried.json()["state"]

        history = (await http.get(f"{path}/history", headers=OWNER)).json()
        assert [item["version"] for item in history["items"]] == [2, 1]
        with engine.inspect() as db:
            assert [r["version"] for r in recorded(db, project_id)] == [1, 2]
        assert (await http.get(path, headers=OWNER)).headers["ETag"] == '"2"'
        # The exact first response, not a re-rendering of it.
        assert replayed.json() == retried.json()


async def test_an_autosave_committed_just_before_a_crash_is_replayed_on_retry(
    engine: Engine, tmp_path: Path
) -> None:
    """The database dies right after an autosave's head commit, before anything else
    reaches it. The editor was told "saved"; a retry with the same key, even from a new
    process that remembers nothing, is reported as that change (the key is stored with
    the revision), not applied again and not a conflict."""
    before_commit = KillSwitch(engine)  # never armed: the head commit goes through
    after_commit = KillSwitch(engine)
    app = crash_app(engine, before_commit, tmp_path, listeners=[KillAfterCommit(after_commit)])
    key = {"Idempotency-Key": "autosave-crash-2"}
    async with running_app(app) as http:
        path, project_id = await new_timeline(http)
        assert (
            await http.put(path, json={"state": STATE}, headers={**OWNER, **if_match(0)})
        ).is_success
        after_commit.armed = True
        saved = await send_patch(http, path, MOVE_C2, 1, **key)
        assert saved.status_code == 200, saved.text
        assert saved.headers["ETag"] == '"2"'
        assert after_commit.fired == 1, "killed right after the head commit"
        assert before_commit.fired == 0

    # A new process, which remembers nothing of the first.
    engine.start()
    async with running_app(crash_app(engine, before_commit, tmp_path)) as http:
        await wait_ready(http)
        head = await http.get(path, headers=OWNER)
        assert head.headers["ETag"] == '"2"', "the head commit happened before the kill"
        assert head.json()["state"]["clips"][1]["start"] == 7.5

        retried = await send_patch(http, path, MOVE_C2, 1, **key)
        assert retried.status_code == 200, retried.text
        assert retried.headers["ETag"] == '"2"'
        assert retried.json()["state"] == head.json()["state"]
        # The same key for another change is refused, and changes nothing.
        other = await send_patch(http, path, RENAME_MARKER, 2, **key)
        assert other.status_code == 422, other.text
        history = (await http.get(f"{path}/history", headers=OWNER)).json()
        assert [item["version"] for item in history["items"]] == [2, 1]
        rebuilt = await http.get(f"{path}/versions/2", headers=OWNER)
        assert rebuilt.json()["state"] == head.json()["state"]
        with engine.inspect() as db:
            assert [r["version"] for r in recorded(db, project_id)] == [1, 2]
        # A process that did not write it carries the head's revision on, and undoes it.
        assert (await send_patch(http, path, RENAME_MARKER, 2)).status_code == 200
        undone = await http.post(f"{path}/undo", headers={**OWNER, **if_match(3)})
        assert undone.json()["state"] == head.json()["state"]
    with engine.inspect() as db:
        assert [r["version"] for r in recorded(db, project_id)] == [1, 2, 3, 4]
