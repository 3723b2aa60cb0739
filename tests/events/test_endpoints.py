"""`GET /api/v1/projects/{id}/events` under a real uvicorn in the test's loop, one replica
(in-process bus, or Redis as the run's cache is configured)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from snipix.app import create_app
from snipix.db.client import Database
from snipix.resources import Resources
from snipix.settings import Settings
from tests.events.sse import EventStream, Served, open_stream, served

OWNER = {"X-User-Id": "owner"}
STRANGER = {"X-User-Id": "stranger"}
PATCH_TYPE = {"Content-Type": "application/json-patch+json"}


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[Served]:
    """The app; heartbeats (and their access re-checks) far apart, so a stream that ends in
    a test ended for what the test did."""
    slow_beat = settings.model_copy(update={"events_heartbeat_s": 300})
    async with served(create_app(slow_beat)) as running:
        yield running


async def new_project(http: httpx.AsyncClient, headers: dict[str, str] = OWNER) -> str:
    created = await http.post("/api/v1/projects", json={"name": "Cut"}, headers=headers)
    assert created.status_code == 201, created.text
    project_id: str = created.json()["id"]
    return project_id


def marker(n: int) -> list[dict[str, Any]]:
    return [{"op": "add", "path": "/markers/-", "value": {"id": f"m{n}", "time": float(n)}}]


async def autosave(http: httpx.AsyncClient, project_id: str, version: int) -> None:
    answer = await http.patch(
        f"/api/v1/projects/{project_id}/timeline",
        content=json.dumps(marker(version + 1)),
        headers={**OWNER, **PATCH_TYPE, "If-Match": f'"{version}"'},
    )
    assert answer.status_code == 200, answer.text


def events_url(project_id: str) -> str:
    return f"/api/v1/projects/{project_id}/events"


async def revisions_until(stream: EventStream, version: int) -> list[int]:
    """The revision ids the stream sends, up to and including `version`."""
    seen: list[int] = []
    while not seen or seen[-1] < version:
        message = await stream.next_event("revision")
        assert message.id is not None
        seen.append(message.id)
    return seen


async def test_every_kind_of_change_reaches_an_open_stream(service: Served) -> None:
    http = service.http
    project_id = await new_project(http)
    async with open_stream(http, events_url(project_id), OWNER) as stream:
        first = await stream.next()
        assert first is not None
        assert first.retry is not None  # the reconnect delay comes first
        await autosave(http, project_id, 0)
        revision = await stream.next_event("revision")
        assert revision.id == 1
        assert revision.data["version"] == 1
        assert revision.data["actor"] == "owner"
        assert revision.data["patch"] == marker(1)

        session = await http.put(
            f"/api/v1/projects/{project_id}/session",
            json={"playheadSec": 12.5, "selectedClipIds": ["c1"]},
            headers=OWNER,
        )
        assert session.status_code == 200, session.text
        presence = await stream.next_event("presence")
        # The stream's own opening was announced first; then the session's position.
        while presence.data["playheadSec"] is None:
            presence = await stream.next_event("presence")
        assert presence.data["userId"] == "owner"
        assert presence.data["selectedClipIds"] == ["c1"]

        renamed = await http.patch(
            f"/api/v1/projects/{project_id}",
            json={"name": "Final cut"},
            headers={**OWNER, "If-Match": '"1"'},
        )
        assert renamed.status_code == 200, renamed.text
        changed = await stream.next_event("project")
        assert changed.data == {"action": "project.updated", "version": 2, "actor": "owner"}
        assert changed.id is None  # only revisions carry an id: Last-Event-ID is a version

        transcript = {
            "language": "en",
            "segments": [
                {"start": 0.0, "end": 1.0, "words": [{"text": "hi", "start": 0.0, "end": 1.0}]}
            ],
        }
        uploaded = await http.put(
            f"/api/v1/projects/{project_id}/transcript", json=transcript, headers=OWNER
        )
        assert uploaded.status_code in (200, 201), uploaded.text
        told = await stream.next_event("transcript")
        assert (told.data["action"], told.data["actor"]) == ("uploaded", "owner")


async def test_last_event_id_replays_exactly_the_missed_revisions_then_live_ones(
    service: Served,
) -> None:
    http = service.http
    project_id = await new_project(http)
    for version in range(3):
        await autosave(http, project_id, version)
    async with open_stream(http, events_url(project_id), {**OWNER, "Last-Event-ID": "1"}) as stream:
        assert await revisions_until(stream, 3) == [2, 3]
        await autosave(http, project_id, 3)
        assert await revisions_until(stream, 4) == [4]
    # The query form, for a first connection that already knows where it is.
    async with open_stream(http, f"{events_url(project_id)}?lastEventId=3", OWNER) as stream:
        replayed = await stream.next_event("revision")
        assert replayed.id == 4
        assert replayed.data["patch"] == marker(4)


async def test_a_client_ahead_of_the_history_is_told_to_reload(service: Served) -> None:
    http = service.http
    project_id = await new_project(http)
    await autosave(http, project_id, 0)
    async with open_stream(http, events_url(project_id), {**OWNER, "Last-Event-ID": "7"}) as stream:
        reload = await stream.next_event("reload", "revision")
        assert (reload.event, reload.data) == ("reload", {"version": 1})
        await autosave(http, project_id, 1)
        assert (await stream.next_event("revision")).id == 2


async def test_non_members_and_unknown_projects_get_404_and_bad_ids_422(
    service: Served,
) -> None:
    http = service.http
    project_id = await new_project(http)
    assert (await http.get(events_url(project_id), headers=STRANGER)).status_code == 404
    assert (await http.get(events_url("p_missing"), headers=OWNER)).status_code == 404
    assert (await http.get(events_url(project_id))).status_code == 401
    bad = await http.get(events_url(project_id), headers={**OWNER, "Last-Event-ID": "x1"})
    assert bad.status_code == 422, bad.text


async def test_streams_are_bounded_per_user(settings: Settings) -> None:
    bounded = settings.model_copy(update={"events_max_per_user": 1})
    async with served(create_app(bounded)) as service:
        http = service.http
        project_id = await new_project(http)
        other = await new_project(http, STRANGER)
        async with open_stream(http, events_url(project_id), OWNER) as first:
            assert await first.next() is not None
            second = await http.get(events_url(project_id), headers=OWNER)
            assert second.status_code == 429, second.text
            assert int(second.headers["Retry-After"]) > 0
            # Another user's stream is not counted against this one.
            async with open_stream(http, events_url(other), STRANGER) as theirs:
                assert await theirs.next() is not None
        # A closed stream gives its place back.
        async with open_stream(http, events_url(project_id), OWNER) as again:
            assert await again.next() is not None


async def test_the_replica_bound_answers_503_with_retry_after(settings: Settings) -> None:
    bounded = settings.model_copy(update={"events_max_streams": 1})
    async with served(create_app(bounded)) as service:
        http = service.http
        project_id = await new_project(http)
        async with open_stream(http, events_url(project_id), OWNER) as first:
            assert await first.next() is not None
            busy = await http.get(events_url(project_id), headers=OWNER)
            assert busy.status_code == 503, busy.text
            assert busy.json()["error"]["code"] == "streams_busy"
            assert int(busy.headers["Retry-After"]) > 0


async def test_heartbeats_keep_an_idle_stream_alive(settings: Settings) -> None:
    quick = settings.model_copy(update={"events_heartbeat_s": 0.05})
    async with served(create_app(quick)) as service:
        project_id = await new_project(service.http)
        async with open_stream(service.http, events_url(project_id), OWNER) as stream:
            beats = 0
            while beats < 2:
                message = await stream.next()
                assert message is not None
                beats += message.comment == "heartbeat"


async def test_a_stream_ends_when_its_user_loses_access(service: Served) -> None:
    http = service.http
    project_id = await new_project(http)
    async with open_stream(http, events_url(project_id), OWNER) as stream:
        assert await stream.next() is not None
        deleted = await http.delete(
            f"/api/v1/projects/{project_id}", headers={**OWNER, "If-Match": '"1"'}
        )
        assert deleted.status_code == 204, deleted.text
        # The change is told, then the re-check finds no access and the stream ends.
        messages = await stream.ended()
        assert [m.data["action"] for m in messages if m.event == "project"] == ["project.deleted"]
    assert (await http.get(events_url(project_id), headers=OWNER)).status_code == 404


async def test_a_membership_change_makes_every_stream_recheck_access(
    settings: Settings, db: Database
) -> None:
    """Access can end without a project change (a member removed): the membership event
    is what makes the stream look again. Uncached, so the check reads the database."""
    uncached = settings.model_copy(update={"events_heartbeat_s": 300, "cache_enabled": False})
    async with served(create_app(uncached)) as service:
        http = service.http
        project_id = await new_project(http)
        resources: Resources = service.server.lifespan.state["resources"]
        async with open_stream(http, events_url(project_id), OWNER) as stream:
            await resources.services.events.on_membership_change(project_id, "someone")
            told = await stream.next_event("membership")
            assert told.data == {"userId": "someone"}
            # Still a member: the stream goes on and gets the next change.
            await autosave(http, project_id, 0)
            assert (await stream.next_event("revision")).id == 1
            # The owner loses access with no project event (as a removed member would).
            await db["projects"].update_one({"_id": project_id}, {"$set": {"userId": "other"}})
            await resources.services.events.on_membership_change(project_id, "owner")
            messages = await stream.ended()
            assert [m.event for m in messages if m.event != "presence"] == ["membership"]


async def test_a_viewer_streams_until_removed_from_the_project(
    service: Served, db: Database
) -> None:
    http = service.http
    project_id = await new_project(http)
    await db["users"].insert_one(
        {
            "_id": "viewer",
            "email": "viewer@example.com",
            "name": "Viewer",
            "status": "active",
            "createdAt": datetime.now(UTC),
        }
    )
    members = f"/api/v1/projects/{project_id}/members"
    added = await http.post(members, json={"userId": "viewer", "role": "viewer"}, headers=OWNER)
    assert added.status_code == 201, added.text
    viewer = {"X-User-Id": "viewer"}
    async with open_stream(http, events_url(project_id), viewer) as stream:
        await autosave(http, project_id, 0)
        assert (await stream.next_event("revision")).id == 1
        removed = await http.delete(f"{members}/viewer", headers=OWNER)
        assert removed.status_code == 204, removed.text
        # The sharing code's hook reaches the stream: it re-checks and ends.
        messages = await stream.ended()
        assert [m.data for m in messages if m.event == "membership"] == [{"userId": "viewer"}]
    assert (await http.get(events_url(project_id), headers=viewer)).status_code == 404


async def test_shutdown_ends_open_streams_and_the_server_exits_without_the_grace(
    settings: Settings,
) -> None:
    grace_s = 60
    async with served(create_app(settings), grace_s=grace_s) as service:
        project_id = await new_project(service.http)
        async with open_stream(service.http, events_url(project_id), OWNER) as stream:
            assert await stream.next() is not None
            loop = asyncio.get_running_loop()
            began = loop.time()
            service.server.should_exit = True
            # The stream finishes its response (no error reading it) and the server exits.
            await stream.ended()
            await asyncio.wait_for(service.task, timeout=grace_s)
            took = loop.time() - began
    print(f"server exited {took:.2f} s after shutdown began, with a stream open")
    assert took < grace_s / 4, "the drain waited for the stream instead of ending it"


async def test_a_signed_link_opens_the_stream_without_a_header(service: Served) -> None:
    http = service.http
    project_id = await new_project(http)
    other = await new_project(http)
    linked = await http.get(f"{events_url(project_id)}/link", headers=OWNER)
    assert linked.status_code == 200, linked.text
    url = linked.json()["url"]
    assert "expiresAt" in linked.json()
    assert (await http.get(f"{events_url(project_id)}/link", headers=STRANGER)).status_code == 404
    async with open_stream(http, url, {}) as stream:
        await autosave(http, project_id, 0)
        assert (await stream.next_event("revision")).id == 1
    token = url.split("token=", 1)[1]
    # Another project's, or a tampered, token opens nothing.
    assert (await http.get(f"{events_url(other)}?token={token}")).status_code == 401
    assert (await http.get(f"{events_url(project_id)}?token={token}x")).status_code == 401
