"""What the bounds and injection tests share: a project with data to protect, the database
as it stands, and the MongoDB commands a request sends."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
from pymongo.database import Database
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from snipix.cache.journal import POLL_COMMENT
from snipix.transcription.repository import CLAIM_COMMENT

Json = dict[str, Any]
Store = Database[dict[str, Any]]

OWNER = {"X-User-Id": "bounds-owner"}
ADMIN = {**OWNER, "X-User-Roles": "admin"}
PATCH_TYPE = {"Content-Type": "application/json-patch+json"}
SECRET = "api-bounds-test-secret-" + "b" * 32

STATE: Json = {
    "tracks": [{"id": "v1", "kind": "video", "name": "Main"}],
    "clips": [{"id": "c1", "trackId": "v1", "start": 0.0, "sourceIn": 0.0, "sourceOut": 2.0}],
    "markers": [{"id": "m1", "time": 1.0, "label": "Intro", "color": "red"}],
}
TRANSCRIPT: Json = {
    "language": "en",
    "speakers": [{"id": "host", "label": "Host"}],
    "segments": [
        {
            "id": "s1",
            "start": 0.0,
            "end": 2.0,
            "speaker": "host",
            "words": [
                {"text": "hello", "start": 0.0, "end": 0.5},
                {"text": "there", "start": 0.6, "end": 1.0},
            ],
        },
        {
            "id": "s2",
            "start": 3.0,
            "end": 4.0,
            "words": [{"text": "again", "start": 3.0, "end": 3.5}],
        },
    ],
}


async def seed(client: httpx.AsyncClient) -> str:
    """A project of OWNER's with a saved timeline (version 1), a transcript and a session."""
    created = await client.post("/api/v1/projects", json={"name": "Guarded"}, headers=OWNER)
    assert created.status_code == 201, created.text
    project_id: str = created.json()["id"]
    base = f"/api/v1/projects/{project_id}"
    saved = await client.put(
        f"{base}/timeline", json={"state": STATE}, headers={**OWNER, "If-Match": '"0"'}
    )
    assert saved.status_code == 200, saved.text
    uploaded = await client.put(f"{base}/transcript", json=TRANSCRIPT, headers=OWNER)
    assert uploaded.status_code == 200, uploaded.text
    session = await client.put(f"{base}/session", json={"playheadSec": 1.5}, headers=OWNER)
    assert session.status_code == 200, session.text
    return project_id


def contents(store: Store) -> dict[str, list[Json]]:
    """Every document of every collection, in `_id` order: to prove nothing was written."""
    return {
        name: list(store[name].find({}).sort("_id", 1))
        for name in sorted(store.list_collection_names())
    }


def error_code(response: httpx.Response) -> str:
    """The error code, from the service's shape or the web app's envelope."""
    body = response.json()
    code = body["error"]["code"] if isinstance(body.get("error"), dict) else body["code"]
    return str(code)


def error_types(response: httpx.Response) -> set[str]:
    """The `type` of each problem listed in the error's details."""
    body = response.json()
    details = body["error"]["details"] if isinstance(body.get("error"), dict) else body["details"]
    return {str(item.get("type")) for item in details} if isinstance(details, list) else set()


def nested(depth: int) -> Any:
    """A JSON value `depth` arrays deep."""
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


def deep_text(depth: int) -> str:
    """The JSON text of arrays nested `depth` deep (past any parser's recursion limit)."""
    return "[" * depth + "]" * depth


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class Commands(CommandListener):
    """The CRUD commands the app sends to the test's database (collection names)."""

    CRUD = frozenset(
        {"find", "insert", "update", "delete", "findAndModify", "aggregate", "count", "distinct"}
    )

    def __init__(self, database: str) -> None:
        self.database = database
        self._lock = threading.Lock()
        self.seen: list[str] = []

    def started(self, event: CommandStartedEvent) -> None:
        if event.command.get("comment") in {POLL_COMMENT, CLAIM_COMMENT}:
            # the cache's journal poll, the transcription runner's claim: no request sent them
            return
        if event.database_name == self.database and event.command_name in self.CRUD:
            with self._lock:
                self.seen.append(f"{event.command_name} {event.command.get(event.command_name)}")

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass

    def clear(self) -> None:
        with self._lock:
            self.seen.clear()
