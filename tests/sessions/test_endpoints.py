"""Editing sessions through HTTP, as the editor uses them: save where the user left off,
read it back (also after a restart), and list the user's recently opened projects.

Each test runs the real app against its own fresh database; `store` (a synchronous
PyMongo handle on that database) is used only to arrange times and to prove what was or
was not written.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from pymongo.database import Database

from snipix.app import create_app
from snipix.settings import Settings
from tests.support import next_millisecond, running_app

Json = dict[str, Any]
Store = Database[dict[str, Any]]

PROJECTS = "/api/v1/projects"
RECENT = "/api/v1/sessions/recent"
SESSIONS = "editing_sessions"
ALICE = "alice"
BOB = "bob"
SESSION = {
    "playheadSec": 12.5,
    "zoom": 2.25,
    "selectedClipIds": ["c1", "clip:2"],
    "panel": "effects",
}
DEFAULTS = {
    "playheadSec": 0.0,
    "zoom": 1.0,
    "selectedClipIds": [],
    "panel": None,
    "lastOpenedAt": None,
    "updatedAt": None,
}


@pytest.fixture
def store(mongo: MongoClient[dict[str, Any]], settings: Settings) -> Store:
    return mongo[settings.database_name]


def who(user: str, *, admin: bool = False) -> dict[str, str]:
    headers = {"X-User-Id": user}
    if admin:
        headers["X-User-Roles"] = "admin"
    return headers


async def create(client: httpx.AsyncClient, name: str = "Cut", user: str = ALICE) -> str:
    response = await client.post(PROJECTS, json={"name": name}, headers=who(user))
    assert response.status_code == 201, response.text
    project_id: str = response.json()["id"]
    return project_id


def session_path(project_id: str) -> str:
    return f"{PROJECTS}/{project_id}/session"


async def put(
    client: httpx.AsyncClient, project_id: str, body: Json, user: str = ALICE
) -> httpx.Response:
    return await client.put(session_path(project_id), json=body, headers=who(user))


async def saved(client: httpx.AsyncClient, project_id: str, body: Json, user: str = ALICE) -> Json:
    response = await put(client, project_id, body, user)
    assert response.status_code == 200, response.text
    session: Json = response.json()
    return session


async def read(client: httpx.AsyncClient, project_id: str, user: str = ALICE) -> Json:
    response = await client.get(session_path(project_id), headers=who(user))
    assert response.status_code == 200, response.text
    session: Json = response.json()
    return session


async def recent_pages(
    client: httpx.AsyncClient, user: str = ALICE, limit: int = 50
) -> list[list[Json]]:
    pages: list[list[Json]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get(RECENT, params=params, headers=who(user))
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            return pages
        assert len(pages) < 30, "pagination does not end"


async def recent_ids(client: httpx.AsyncClient, user: str = ALICE, limit: int = 50) -> list[str]:
    return [item["projectId"] for page in await recent_pages(client, user, limit) for item in page]


def assert_error(response: httpx.Response, status: int, code: str) -> Json:
    assert response.status_code == status, response.text
    error: Json = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    return error


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


async def tick() -> None:
    """Let the clock move past the millisecond MongoDB stores, so times differ."""
    await next_millisecond()


# --- save and read -----------------------------------------------------------------------


async def test_a_saved_session_reads_back_as_saved(client: httpx.AsyncClient, store: Store) -> None:
    """Reopening a project finds the playhead, zoom, selection and panel where they were."""
    project_id = await create(client)
    before = datetime.now(UTC) - timedelta(seconds=1)
    response = await saved(client, project_id, SESSION)
    assert response == {
        "projectId": project_id,
        **SESSION,
        "lastOpenedAt": response["lastOpenedAt"],
        "updatedAt": response["updatedAt"],
    }
    opened = parse(response["lastOpenedAt"])
    assert before <= opened <= datetime.now(UTC)
    assert opened.microsecond % 1000 == 0
    assert response["updatedAt"] == response["lastOpenedAt"]
    assert await read(client, project_id) == response

    stored = store[SESSIONS].find_one({"_id": f"{ALICE}:{project_id}"})
    assert stored is not None
    assert stored["userId"] == ALICE
    assert stored["projectId"] == project_id


async def test_a_second_save_replaces_the_session_last_write_wins(
    client: httpx.AsyncClient, store: Store
) -> None:
    """Saving again needs no If-Match; the newest save is what the next open shows."""
    project_id = await create(client)
    first = await saved(client, project_id, SESSION)
    await tick()
    second = await saved(client, project_id, {"playheadSec": 3, "selectedClipIds": ["c9", "c9"]})
    assert second["playheadSec"] == 3.0
    assert second["selectedClipIds"] == ["c9"]
    assert second["zoom"] == 1.0
    assert second["panel"] is None
    assert second["lastOpenedAt"] > first["lastOpenedAt"]
    assert await read(client, project_id) == second
    assert store[SESSIONS].count_documents({}) == 1


async def test_concurrent_first_saves_make_one_session(
    client: httpx.AsyncClient, store: Store
) -> None:
    """Two tabs opening a project at once both succeed and leave exactly one session."""
    project_id = await create(client)
    responses = await asyncio.gather(
        *(put(client, project_id, {"playheadSec": n}) for n in range(5))
    )
    assert [r.status_code for r in responses] == [200] * 5
    assert store[SESSIONS].count_documents({"projectId": project_id}) == 1


async def test_a_never_opened_project_reads_as_the_defaults(
    client: httpx.AsyncClient, store: Store
) -> None:
    """A project the user never opened has a fresh session (200), and reading writes nothing."""
    project_id = await create(client)
    assert await read(client, project_id) == {"projectId": project_id, **DEFAULTS}
    assert store[SESSIONS].count_documents({}) == 0
    assert await recent_ids(client) == []


@pytest.mark.parametrize(
    ("body", "where"),
    [
        pytest.param({"playheadSec": -1}, "playheadSec", id="negative-playhead"),
        pytest.param({"playheadSec": 8 * 86_400}, "playheadSec", id="playhead-too-far"),
        pytest.param({"zoom": 0}, "zoom", id="zero-zoom"),
        pytest.param({"zoom": 1e9}, "zoom", id="huge-zoom"),
        pytest.param({"selectedClipIds": ["c 1"]}, "selectedClipIds", id="bad-clip-id"),
        pytest.param(
            {"selectedClipIds": [f"c{n}" for n in range(501)]},
            "selectedClipIds",
            id="too-many-selected",
        ),
        pytest.param({"panel": "x" * 65}, "panel", id="long-panel"),
        pytest.param({"cursorColor": "red"}, "cursorColor", id="unknown-field"),
        pytest.param({"lastOpenedAt": "2020-01-01T00:00:00Z"}, "lastOpenedAt", id="server-field"),
        pytest.param({"$set": {"zoom": 2}}, "$set", id="operator-key"),
        pytest.param({"panel": "a", "x.y": 1}, "x.y", id="dotted-key"),
    ],
)
async def test_an_invalid_session_is_422_and_writes_nothing(
    client: httpx.AsyncClient, store: Store, body: Json, where: str
) -> None:
    """A bad save is refused naming the field; nothing is stored and nothing counts as opened."""
    project_id = await create(client)
    error = assert_error(await put(client, project_id, body), 422, "validation_error")
    assert where in error["message"] or where in str(error["details"])
    assert store[SESSIONS].count_documents({}) == 0
    assert await recent_ids(client) == []


async def test_another_users_project_is_404_and_their_session_is_untouched(
    client: httpx.AsyncClient, store: Store
) -> None:
    """Bob can neither read nor overwrite Alice's session, nor see her project as recent."""
    project_id = await create(client)
    mine = await saved(client, project_id, SESSION)
    before = store[SESSIONS].find_one({"_id": f"{ALICE}:{project_id}"})

    assert_error(await put(client, project_id, {"playheadSec": 99}, BOB), 404, "not_found")
    got = await client.get(session_path(project_id), headers=who(BOB))
    assert_error(got, 404, "not_found")

    assert store[SESSIONS].find_one({"_id": f"{ALICE}:{project_id}"}) == before
    assert store[SESSIONS].count_documents({}) == 1
    assert await read(client, project_id) == mine
    assert await recent_ids(client, BOB) == []


async def test_an_unknown_project_is_404(client: httpx.AsyncClient, store: Store) -> None:
    """Saving a session for a project that does not exist is 404 and stores nothing."""
    assert_error(await put(client, "nope", SESSION), 404, "not_found")
    assert store[SESSIONS].count_documents({}) == 0


# --- recent ------------------------------------------------------------------------------


async def test_recent_lists_own_projects_most_recently_opened_first(
    client: httpx.AsyncClient,
) -> None:
    """The recent list shows the user's projects with name and playhead, newest open first."""
    first = await create(client, "First")
    second = await create(client, "Second")
    third = await create(client, "Third")
    never = await create(client, "Never opened")
    bobs = await create(client, "Bob's", BOB)
    await saved(client, bobs, {"playheadSec": 1}, BOB)
    for project_id, playhead in ((first, 1.0), (second, 2.0), (third, 3.0)):
        await saved(client, project_id, {"playheadSec": playhead})
        await tick()
    await saved(client, first, {"playheadSec": 4.5})

    response = await client.get(RECENT, headers=who(ALICE))
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["nextCursor"] is None
    assert [item["projectId"] for item in page["items"]] == [first, third, second]
    assert page["items"][0] == {
        "projectId": first,
        "name": "First",
        "lastOpenedAt": page["items"][0]["lastOpenedAt"],
        "playheadSec": 4.5,
    }
    assert never not in [item["projectId"] for item in page["items"]]
    assert await recent_ids(client, BOB) == [bobs]


async def test_recent_pages_walk_every_project_once(
    client: httpx.AsyncClient, store: Store
) -> None:
    """Paging through recent projects, even opened in the same millisecond, shows each once."""
    projects = [await create(client, f"P{n}") for n in range(7)]
    for project_id in projects:
        await saved(client, project_id, {})
    same = datetime(2030, 1, 1, tzinfo=UTC)
    store[SESSIONS].update_many(
        {"projectId": {"$in": projects[:4]}}, {"$set": {"lastOpenedAt": same}}
    )

    pages = await recent_pages(client, limit=2)
    assert [len(page) for page in pages] == [2, 2, 2, 1]
    walked = [item["projectId"] for page in pages for item in page]
    assert sorted(walked) == sorted(projects)
    assert set(walked[:4]) == set(projects[:4])
    times = [parse(item["lastOpenedAt"]) for page in pages for item in page]
    assert times == sorted(times, reverse=True)


async def test_a_deleted_project_leaves_recent_and_returns_after_restore(
    client: httpx.AsyncClient,
) -> None:
    """Deleting a project hides it from recent (and its session); restoring brings both back."""
    projects = [await create(client, f"P{n}") for n in range(5)]
    for project_id in projects:
        await saved(client, project_id, {"playheadSec": 7})
        await tick()
    newest_first = projects[::-1]
    doomed = newest_first[1:4]
    for project_id in doomed:
        deleted = await client.delete(f"{PROJECTS}/{project_id}", headers=who(ALICE))
        assert deleted.status_code == 204

    assert await recent_ids(client) == [newest_first[0], newest_first[4]]
    # Pages skip the deleted projects without losing or repeating a live one.
    assert await recent_ids(client, limit=1) == [newest_first[0], newest_first[4]]
    assert await recent_ids(client, limit=2) == [newest_first[0], newest_first[4]]
    got = await client.get(session_path(doomed[0]), headers=who(ALICE))
    assert_error(got, 404, "not_found")
    assert_error(await put(client, doomed[0], {}), 404, "not_found")

    restored = await client.post(f"{PROJECTS}/{doomed[0]}/restore", headers=who(ALICE))
    assert restored.status_code == 200, restored.text
    assert await recent_ids(client) == [newest_first[0], doomed[0], newest_first[4]]
    assert (await read(client, doomed[0]))["playheadSec"] == 7.0


async def test_a_page_of_only_deleted_projects_still_leads_to_the_rest(
    client: httpx.AsyncClient,
) -> None:
    """Many deleted projects in a row never end the recent list early."""
    live = await create(client, "Live")
    await saved(client, live, {})
    await tick()
    for n in range(8):
        project_id = await create(client, f"Gone {n}")
        await saved(client, project_id, {})
        assert (
            await client.delete(f"{PROJECTS}/{project_id}", headers=who(ALICE))
        ).status_code == 204
    assert await recent_ids(client, limit=1) == [live]


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"cursor": "not-a-cursor"}, id="garbage-cursor"),
        pytest.param({"limit": "0"}, id="limit-zero"),
        pytest.param({"limit": "201"}, id="limit-too-big"),
        pytest.param({"limit[$gt]": "1"}, id="operator-name"),
        pytest.param({"cursor": '{"$gt": ""}'}, id="operator-value"),
    ],
)
async def test_bad_recent_parameters_are_422(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    """A tampered cursor, an out-of-range limit or an operator-shaped parameter is a 422."""
    assert_error(
        await client.get(RECENT, params=params, headers=who(ALICE)), 422, "validation_error"
    )


async def test_another_lists_cursor_is_422(client: httpx.AsyncClient) -> None:
    """A cursor from the projects list is not accepted by the recent list."""
    for n in range(3):
        await create(client, f"P{n}")
    projects = await client.get(PROJECTS, params={"limit": 1}, headers=who(ALICE))
    cursor = projects.json()["nextCursor"]
    assert cursor is not None
    response = await client.get(RECENT, params={"cursor": cursor}, headers=who(ALICE))
    assert_error(response, 422, "validation_error")


async def test_no_identity_is_401(client: httpx.AsyncClient) -> None:
    """Without an identity the session routes answer 401."""
    assert (await client.get(RECENT)).status_code == 401
    assert (await client.get(session_path("p1"))).status_code == 401
    assert (await client.put(session_path("p1"), json={})).status_code == 401


# --- durability and purge ----------------------------------------------------------------


async def test_sessions_survive_an_app_restart(settings: Settings) -> None:
    """Stopping the service and starting a new one finds every session where it was left."""
    async with running_app(create_app(settings)) as first:
        project_id = await create(first)
        before = await saved(first, project_id, SESSION)
    async with running_app(create_app(settings)) as second:
        assert await read(second, project_id) == before
        assert await recent_ids(second) == [project_id]


async def test_purging_a_project_removes_its_sessions(
    client: httpx.AsyncClient, store: Store
) -> None:
    """An admin purge of a deleted project deletes its sessions; other sessions stay."""
    doomed = await create(client, "Doomed")
    kept = await create(client, "Kept")
    await saved(client, doomed, SESSION)
    await saved(client, kept, SESSION)
    assert (await client.delete(f"{PROJECTS}/{doomed}", headers=who(ALICE))).status_code == 204

    purge = await client.delete(f"/api/v1/admin/projects/{doomed}", headers=who("root", admin=True))
    assert purge.status_code == 200, purge.text
    assert purge.json()["deleted"][SESSIONS] == 1
    assert store[SESSIONS].count_documents({"projectId": doomed}) == 0
    assert store[SESSIONS].count_documents({"projectId": kept}) == 1
    assert await recent_ids(client) == [kept]


# --- storage -----------------------------------------------------------------------------


async def test_sessions_are_unique_by_id_with_the_catalogue_indexes(
    client: httpx.AsyncClient, store: Store
) -> None:
    """One session per user and project by `_id`; the recent index carries `_id` for paging."""
    indexes = store[SESSIONS].index_information()
    assert indexes["user_recent_id"]["key"] == [("userId", 1), ("lastOpenedAt", -1), ("_id", -1)]
    assert indexes["project"]["key"] == [("projectId", 1)]
    assert "user_project" not in indexes
    assert "user_recent" not in indexes


async def test_retired_session_indexes_are_dropped_at_start_up(
    settings: Settings, store: Store
) -> None:
    """A database from before this change loses the old unique and recent indexes on start."""
    sessions = store[SESSIONS]
    sessions.create_index([("userId", 1), ("projectId", 1)], name="user_project", unique=True)
    sessions.create_index([("userId", 1), ("lastOpenedAt", -1)], name="user_recent")
    async with running_app(create_app(settings)):
        indexes = sessions.index_information()
    assert "user_project" not in indexes
    assert "user_recent" not in indexes
    assert "user_recent_id" in indexes


async def test_openapi_documents_the_session_routes(client: httpx.AsyncClient) -> None:
    """The OpenAPI document describes the session routes and their models."""
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert {"get", "put"} <= set(paths[f"{PROJECTS}/{{project_id}}/session"])
    assert "404" in paths[f"{PROJECTS}/{{project_id}}/session"]["put"]["responses"]
    assert "get" in paths[RECENT]
    schemas = spec["components"]["schemas"]
    assert set(schemas["SessionUpdate"]["properties"]) == {
        "playheadSec",
        "zoom",
        "selectedClipIds",
        "panel",
    }
    assert {"projectId", "name", "lastOpenedAt", "playheadSec"} == set(
        schemas["RecentProject"]["properties"]
    )
