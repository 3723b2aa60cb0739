"""The projects API through HTTP, as a client author would use it: create, list, search,
update with versions, soft delete and restore, history, rollback, audit and purge.

Each test runs the real app against its own fresh database; `store` (a synchronous
PyMongo handle on that database) is used only to prove what was or was not written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from pymongo.database import Database

from snipix.settings import Settings
from tests.support import next_millisecond

Json = dict[str, Any]
Store = Database[dict[str, Any]]

PROJECTS = "/api/v1/projects"
ALICE = "alice"
BOB = "bob"
ROOT = "root"
PROJECT_KEYS = {
    "id",
    "userId",
    "name",
    "description",
    "status",
    "tags",
    "media",
    "createdAt",
    "updatedAt",
    "version",
    "isDeleted",
    "deletedAt",
}
NO_MEDIA = {
    "source": None,
    "durationSec": None,
    "sizeBytes": None,
    "mimeType": None,
    "width": None,
    "height": None,
    "fps": None,
    "thumbnail": None,
    "trimmedSource": None,
    "trimmedDurationSec": None,
    "sourceFile": None,
    "thumbnailFile": None,
    "trimmedFile": None,
}
METADATA = ("name", "description", "status", "tags", "media")
DEPENDENT_COLLECTIONS = (
    "timelines",
    "timeline_revisions",
    "transcripts",
    "transcript_segments",
    "editing_sessions",
)


@pytest.fixture
def store(mongo: MongoClient[dict[str, Any]], settings: Settings) -> Store:
    return mongo[settings.database_name]


# --- helpers -----------------------------------------------------------------------------


def who(
    user: str, *, admin: bool = False, request_id: str | None = None, if_match: int | None = None
) -> dict[str, str]:
    headers = {"X-User-Id": user}
    if admin:
        headers["X-User-Roles"] = "admin"
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    if if_match is not None:
        headers["If-Match"] = f'"{if_match}"'
    return headers


def admin() -> dict[str, str]:
    return who(ROOT, admin=True)


async def create(
    client: httpx.AsyncClient, user: str = ALICE, request_id: str | None = None, **fields: Any
) -> Json:
    body: Json = {"name": "Untitled", **fields}
    response = await client.post(PROJECTS, json=body, headers=who(user, request_id=request_id))
    assert response.status_code == 201, response.text
    project: Json = response.json()
    return project


async def get(client: httpx.AsyncClient, project_id: str, user: str = ALICE) -> httpx.Response:
    return await client.get(f"{PROJECTS}/{project_id}", headers=who(user))


async def current(client: httpx.AsyncClient, project_id: str, user: str = ALICE) -> Json:
    response = await get(client, project_id, user)
    assert response.status_code == 200, response.text
    project: Json = response.json()
    return project


async def patch(
    client: httpx.AsyncClient,
    project_id: str,
    version: int | None,
    user: str = ALICE,
    request_id: str | None = None,
    **fields: Any,
) -> httpx.Response:
    return await client.patch(
        f"{PROJECTS}/{project_id}",
        json=fields,
        headers=who(user, request_id=request_id, if_match=version),
    )


async def update(
    client: httpx.AsyncClient, project_id: str, version: int, user: str = ALICE, **fields: Any
) -> Json:
    response = await patch(client, project_id, version, user, **fields)
    assert response.status_code == 200, response.text
    project: Json = response.json()
    return project


async def delete(
    client: httpx.AsyncClient, project_id: str, user: str = ALICE, request_id: str | None = None
) -> httpx.Response:
    return await client.delete(f"{PROJECTS}/{project_id}", headers=who(user, request_id=request_id))


async def restore(
    client: httpx.AsyncClient, project_id: str, user: str = ALICE, request_id: str | None = None
) -> httpx.Response:
    return await client.post(
        f"{PROJECTS}/{project_id}/restore", headers=who(user, request_id=request_id)
    )


async def listing(
    client: httpx.AsyncClient, user: str = ALICE, **params: str | int
) -> httpx.Response:
    return await client.get(PROJECTS, params=params, headers=who(user))


async def ids(client: httpx.AsyncClient, user: str = ALICE, **params: str | int) -> list[str]:
    response = await listing(client, user, **params)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["nextCursor"] is None
    return [item["id"] for item in page["items"]]


async def walk(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    limit: int,
    extra: dict[str, str] | None = None,
) -> list[list[Json]]:
    """Every page of a list, following `nextCursor` until it is null."""
    pages: list[list[Json]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {**(extra or {}), "limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get(url, params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            return pages
        assert len(pages) < 20, "pagination does not end"


def assert_error(response: httpx.Response, status: int, code: str) -> Json:
    assert response.status_code == status, response.text
    error: Json = response.json()["error"]
    assert error["code"] == code
    assert error["requestId"] == response.headers["X-Request-ID"]
    assert error["message"]
    return error


def assert_nothing_written(store: Store) -> None:
    assert store["projects"].count_documents({}) == 0
    assert store["audit_log"].count_documents({}) == 0
    assert store["project_versions"].count_documents({}) == 0


def metadata(item: Json) -> Json:
    return {name: item[name] for name in METADATA}


async def tick() -> None:
    """Let the clock move past the millisecond MongoDB stores, so times differ."""
    await next_millisecond()


# --- create and read -----------------------------------------------------------------------


async def test_create_returns_the_project_with_location_and_etag(
    client: httpx.AsyncClient,
) -> None:
    """Creating a project answers 201 with where it lives, its version and its camelCase body."""
    media = {"source": "s3://bucket/raw.mp4", "durationSec": 12.5, "width": 1920, "height": 1080}
    response = await client.post(
        PROJECTS,
        json={
            "name": "  Holiday reel  ",
            "description": "Beach, day two",
            "tags": ["travel", "beach", "travel"],
            "media": media,
        },
        headers=who(ALICE),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == PROJECT_KEYS
    assert response.headers["Location"] == f"{PROJECTS}/{body['id']}"
    assert response.headers["ETag"] == '"1"'
    assert body["userId"] == ALICE
    assert body["name"] == "Holiday reel"
    assert body["description"] == "Beach, day two"
    assert body["status"] == "draft"
    assert body["tags"] == ["travel", "beach"]
    assert body["media"] == {**NO_MEDIA, **media}
    assert body["version"] == 1
    assert body["isDeleted"] is False
    assert body["deletedAt"] is None
    assert body["createdAt"] == body["updatedAt"]
    assert datetime.fromisoformat(body["createdAt"]).tzinfo is not None

    read = await client.get(response.headers["Location"], headers=who(ALICE))
    assert read.status_code == 200
    assert read.headers["ETag"] == '"1"'
    assert read.json() == body


async def test_create_with_only_a_name_uses_the_defaults(client: httpx.AsyncClient) -> None:
    """A name is all it takes: empty description, no tags, no media, status draft."""
    project = await create(client, name="Just a name")
    assert metadata(project) == {
        "name": "Just a name",
        "description": "",
        "status": "draft",
        "tags": [],
        "media": None,
    }
    assert await current(client, project["id"]) == project


async def test_unknown_project_is_404(client: httpx.AsyncClient) -> None:
    """Reading a project that does not exist says not_found, naming the id."""
    error = assert_error(await get(client, "nope123"), 404, "not_found")
    assert "nope123" in error["message"]


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"name": ""}, "name", id="empty-name"),
        pytest.param({"name": "   "}, "name", id="blank-name"),
        pytest.param({"name": "x" * 201}, "name", id="long-name"),
        pytest.param({}, "name", id="missing-name"),
        pytest.param({"name": "x", "colour": "red"}, "colour", id="unknown-field"),
        pytest.param({"name": "x", "version": 7}, "version", id="version"),
        pytest.param({"name": "x", "userId": BOB}, "userId", id="userId"),
        pytest.param({"name": "x", "id": "p_1"}, "id", id="id"),
        pytest.param(
            {"name": "x", "createdAt": "2020-01-01T00:00:00Z"}, "createdAt", id="createdAt"
        ),
        pytest.param({"name": "x", "isDeleted": True}, "isDeleted", id="isDeleted"),
        pytest.param({"name": "x", "status": "published"}, "status", id="bad-status"),
        pytest.param(
            {"name": "x", "tags": [f"t{i}" for i in range(21)]}, "tags", id="too-many-tags"
        ),
        pytest.param({"name": "x", "tags": ["$ne"]}, "tags", id="operator-tag"),
        pytest.param(
            {"name": "x", "media": {"durationSec": -1}}, "media.durationSec", id="negative-duration"
        ),
        pytest.param({"name": "x", "media": {"codec": "h264"}}, "media.codec", id="media-extra"),
        pytest.param(
            {"name": "x", "media": {"sizeBytes": False}}, "media.sizeBytes", id="boolean-size"
        ),
        pytest.param(
            {"name": "x", "media": {"durationSec": True}},
            "media.durationSec",
            id="boolean-duration",
        ),
        pytest.param(
            {"name": "x", "media": {"width": "1920"}}, "media.width", id="numeric-string-width"
        ),
    ],
)
async def test_invalid_create_is_422_naming_the_field_and_writes_nothing(
    client: httpx.AsyncClient, store: Store, body: Json, field: str
) -> None:
    """A bad or server-owned field is a 422 that says which field, and nothing is stored."""
    response = await client.post(PROJECTS, json=body, headers=who(ALICE))
    error = assert_error(response, 422, "validation_error")
    assert field in error["message"]
    locations = [".".join(problem["loc"][1:]) for problem in error["details"]]
    assert any(location.startswith(field) for location in locations), locations
    assert_nothing_written(store)


async def test_create_body_that_is_not_an_object_is_422(
    client: httpx.AsyncClient, store: Store
) -> None:
    """A JSON array, or text that is not JSON, is a 422, never a 500."""
    as_list = await client.post(PROJECTS, json=[{"name": "x"}], headers=who(ALICE))
    assert_error(as_list, 422, "validation_error")
    broken = await client.post(
        PROJECTS,
        content=b'{"name": ',
        headers={**who(ALICE), "Content-Type": "application/json"},
    )
    assert_error(broken, 422, "validation_error")
    assert_nothing_written(store)


# --- operator injection ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "key"),
    [
        pytest.param({"name": {"$gt": ""}}, "$gt", id="operator-value"),
        pytest.param({"name": "x", "$where": "1"}, "$where", id="top-level-operator"),
        pytest.param({"name": "x", "media": {"a.b": 1}}, "a.b", id="dotted-key"),
        pytest.param({"name": "x", "media": {"$set": {}}}, "$set", id="nested-operator"),
    ],
)
async def test_operator_keys_in_a_body_are_refused(
    client: httpx.AsyncClient, store: Store, body: Json, key: str
) -> None:
    """Keys MongoDB could read as operators or paths are a 422; nothing reaches the database."""
    response = await client.post(PROJECTS, json=body, headers=who(ALICE))
    error = assert_error(response, 422, "validation_error")
    assert key in error["message"] or key in str(error["details"])
    assert_nothing_written(store)


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"status[$ne]": "draft"}, id="status-ne"),
        pytest.param({"tag[$gt]": ""}, id="tag-gt"),
        pytest.param({"tag": "$gt"}, id="tag-operator-value"),
        pytest.param({"q": '{"$gt": ""}'}, id="q-json-operator"),
    ],
)
async def test_operator_shaped_query_parameters_are_refused(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    """A list query that smuggles an operator is a 422, not a widened match."""
    await create(client, name="Secret")
    await create(client, BOB, name="Bob's")
    response = await listing(client, ALICE, **params)
    assert_error(response, 422, "validation_error")
    assert "items" not in response.json()


async def test_operator_in_a_patch_body_is_refused(client: httpx.AsyncClient, store: Store) -> None:
    """A PATCH body shaped like a MongoDB update is a 422 and the project is untouched."""
    project = await create(client, name="Keep me")
    response = await client.patch(
        f"{PROJECTS}/{project['id']}",
        json={"$set": {"name": "x"}},
        headers=who(ALICE, if_match=1),
    )
    assert_error(response, 422, "validation_error")
    assert await current(client, project["id"]) == project
    assert store["project_versions"].count_documents({}) == 0
    assert store["audit_log"].count_documents({}) == 1


# --- listing ---------------------------------------------------------------------------------


async def test_list_is_newest_update_first_and_can_sort_by_creation(
    client: httpx.AsyncClient,
) -> None:
    """The list shows the most recently changed project first; sort=createdAt by creation."""
    first = await create(client, name="first")
    await tick()
    second = await create(client, name="second")
    await tick()
    third = await create(client, name="third")
    await tick()
    await update(client, first["id"], 1, name="first, edited")

    assert await ids(client) == [first["id"], third["id"], second["id"]]
    assert await ids(client, sort="updatedAt") == [first["id"], third["id"], second["id"]]
    assert await ids(client, sort="createdAt") == [third["id"], second["id"], first["id"]]
    response = await listing(client, sort="name")
    assert_error(response, 422, "validation_error")


async def test_list_shows_only_the_callers_projects(client: httpx.AsyncClient) -> None:
    """Each user lists their own projects and nobody else's."""
    mine = await create(client, ALICE, name="mine")
    theirs = await create(client, BOB, name="theirs")
    assert await ids(client, ALICE) == [mine["id"]]
    assert await ids(client, BOB) == [theirs["id"]]
    assert await ids(client, "carol") == []


async def test_list_filters_by_status_and_tag(client: httpx.AsyncClient) -> None:
    """status= and tag= narrow the list, alone or together."""
    trip = await create(client, name="trip", status="editing", tags=["travel", "family"])
    report = await create(client, name="report", tags=["work"])
    demo = await create(client, name="demo", status="editing", tags=["work"])
    await create(client, BOB, name="bob's", status="editing", tags=["work"])

    assert set(await ids(client, status="editing")) == {trip["id"], demo["id"]}
    assert set(await ids(client, tag="work")) == {report["id"], demo["id"]}
    assert await ids(client, status="editing", tag="work") == [demo["id"]]
    assert await ids(client, tag="family") == [trip["id"]]
    assert await ids(client, status="archived") == []
    assert_error(await listing(client, status="published"), 422, "validation_error")


async def test_pagination_walks_every_project_once(client: httpx.AsyncClient) -> None:
    """Following nextCursor visits every project exactly once, in list order."""
    created = [(await create(client, name=f"p{i}"))["id"] for i in range(7)]
    everything = await ids(client)
    assert sorted(everything) == sorted(created)

    pages = await walk(client, PROJECTS, who(ALICE), limit=3)
    assert [len(page) for page in pages] == [3, 3, 1]
    walked = [item["id"] for page in pages for item in page]
    assert walked == everything

    by_creation = await ids(client, sort="createdAt")
    pages = await walk(client, PROJECTS, who(ALICE), limit=3, extra={"sort": "createdAt"})
    walked_by_creation = [item["id"] for page in pages for item in page]
    assert walked_by_creation == by_creation


async def test_last_full_page_has_no_next_cursor(client: httpx.AsyncClient) -> None:
    """When the items fit the page exactly, nextCursor is null (no empty extra page)."""
    for i in range(3):
        await create(client, name=f"p{i}")
    page = (await listing(client, limit=3)).json()
    assert len(page["items"]) == 3
    assert page["nextCursor"] is None


@pytest.mark.parametrize("limit", ["0", "201", "-1", "ten"])
async def test_out_of_range_limit_is_422(client: httpx.AsyncClient, limit: str) -> None:
    """limit must be 1-200."""
    assert_error(await listing(client, limit=limit), 422, "validation_error")


async def test_limit_200_is_accepted(client: httpx.AsyncClient) -> None:
    """The maximum page size is allowed."""
    await create(client)
    response = await listing(client, limit=200)
    assert response.status_code == 200
    assert len(response.json()["items"]) == 1


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"cursor": "garbage!!"}, id="not-base64"),
        pytest.param({"cursor": "eyJ4IjoxfQ"}, id="wrong-fields"),
        pytest.param({"cursor": "eyJ2IjoyfQ"}, id="version-cursor"),
        pytest.param({"cursor": "garbage!!", "q": "holiday"}, id="search-garbage"),
        pytest.param({"cursor": "x" * 2000}, id="too-long"),
    ],
)
async def test_garbage_cursor_is_422(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    """A cursor that is not this list's is a clear validation error, not a wrong page."""
    await create(client, name="holiday")
    error = assert_error(await listing(client, **params), 422, "validation_error")
    assert "cursor" in error["message"].lower() or "cursor" in str(error["details"])


# --- search ----------------------------------------------------------------------------------


async def test_search_matches_name_and_description_ranking_names_first(
    client: httpx.AsyncClient,
) -> None:
    """q= finds words in names and descriptions; a name match ranks above a description one."""
    # Created first so that a tie broken by newest id would put it last.
    by_name = await create(client, name="Sunset timelapse", description="golden hour")
    by_description = await create(client, name="Beach day", description="we filmed the sunset")
    await create(client, name="Groceries", description="nothing to see")
    await create(client, BOB, name="Sunset for Bob", description="sunset sunset")

    assert await ids(client, q="sunset") == [by_name["id"], by_description["id"]]
    assert await ids(client, q="golden") == [by_name["id"]]
    assert await ids(client, q="filmed") == [by_description["id"]]
    assert await ids(client, q="nonexistentword") == []
    assert await ids(client, BOB, q="sunset") != []
    assert by_name["id"] not in await ids(client, BOB, q="sunset")


async def test_search_pages_without_duplicates(client: httpx.AsyncClient) -> None:
    """Search results page with nextCursor like the plain list."""
    made = {(await create(client, name=f"interview {i}"))["id"] for i in range(3)}
    first = (await listing(client, q="interview", limit=2)).json()
    assert len(first["items"]) == 2
    assert first["nextCursor"] is not None
    rest = (await listing(client, q="interview", limit=2, cursor=first["nextCursor"])).json()
    assert rest["nextCursor"] is None
    found = [item["id"] for item in first["items"] + rest["items"]]
    assert sorted(found) == sorted(made)


async def test_search_combines_with_filters(client: httpx.AsyncClient) -> None:
    """q= with status= and tag= returns only matches that pass the filters."""
    ready = await create(client, name="podcast one", status="ready", tags=["audio"])
    await create(client, name="podcast two", tags=["audio"])
    await create(client, name="podcast three", status="ready")
    assert await ids(client, q="podcast", status="ready", tag="audio") == [ready["id"]]


async def test_deleted_projects_leave_search_and_return_after_restore(
    client: httpx.AsyncClient,
) -> None:
    """A deleted project is not found by search until it is restored."""
    project = await create(client, name="Wedding highlights")
    assert await ids(client, q="wedding") == [project["id"]]
    assert (await delete(client, project["id"])).status_code == 204
    assert await ids(client, q="wedding") == []
    assert (await restore(client, project["id"])).status_code == 200
    assert await ids(client, q="wedding") == [project["id"]]


# --- updates and concurrency ----------------------------------------------------------------


async def test_patch_with_if_match_makes_a_new_version(client: httpx.AsyncClient) -> None:
    """A change based on the current ETag succeeds and bumps the version."""
    project = await create(client, name="Draft", tags=["a"])
    await tick()
    response = await patch(client, project["id"], 1, name=" Final ", status="ready")
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"2"'
    changed = response.json()
    assert changed["version"] == 2
    assert changed["name"] == "Final"
    assert changed["status"] == "ready"
    assert changed["tags"] == ["a"]
    assert changed["createdAt"] == project["createdAt"]
    assert changed["updatedAt"] > project["updatedAt"]
    read = await get(client, project["id"])
    assert read.headers["ETag"] == '"2"'
    assert read.json() == changed


async def test_stale_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient, store: Store
) -> None:
    """Writing over someone else's newer change fails with the version to reload."""
    project = await create(client, name="Shared")
    winner = await update(client, project["id"], 1, name="Theirs")
    response = await patch(client, project["id"], 1, name="Mine")
    error = assert_error(response, 412, "version_mismatch")
    assert error["details"]["currentVersion"] == 2
    assert await current(client, project["id"]) == winner
    assert store["audit_log"].count_documents({}) == 2
    assert store["project_versions"].count_documents({}) == 1


async def test_patch_without_precondition_is_428(client: httpx.AsyncClient, store: Store) -> None:
    """A change that names no version is refused rather than applied blindly."""
    project = await create(client, name="Careful")
    response = await patch(client, project["id"], None, name="Blind")
    assert_error(response, 428, "precondition_required")
    assert await current(client, project["id"]) == project
    assert store["project_versions"].count_documents({}) == 0


async def test_base_version_in_the_body_works_like_if_match(client: httpx.AsyncClient) -> None:
    """baseVersion in the body is an alternative to If-Match, with the same 412."""
    project = await create(client, name="Body version")
    response = await patch(client, project["id"], None, name="Second", baseVersion=1)
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"2"'
    assert response.json()["version"] == 2
    assert "baseVersion" not in response.json()
    stale = await patch(client, project["id"], None, name="Third", baseVersion=1)
    error = assert_error(stale, 412, "version_mismatch")
    assert error["details"]["currentVersion"] == 2
    assert (await current(client, project["id"]))["name"] == "Second"


async def test_if_match_and_base_version_must_agree(client: httpx.AsyncClient) -> None:
    """Two different base versions in one request are refused."""
    project = await create(client, name="Two versions")
    await update(client, project["id"], 1, name="v2")
    response = await patch(client, project["id"], 2, name="v3", baseVersion=1)
    assert_error(response, 422, "validation_error")
    assert (await current(client, project["id"]))["version"] == 2


@pytest.mark.parametrize("if_match", ['W/"1"', "1", '"1"'])
async def test_if_match_accepts_the_etag_forms(client: httpx.AsyncClient, if_match: str) -> None:
    """If-Match works with the ETag as sent, unquoted, or weak."""
    project = await create(client, name="Forms")
    response = await client.patch(
        f"{PROJECTS}/{project['id']}",
        json={"name": "ok"},
        headers={**who(ALICE), "If-Match": if_match},
    )
    assert response.status_code == 200, response.text


async def test_malformed_if_match_is_422(client: httpx.AsyncClient) -> None:
    """An If-Match that is not a version is a validation error."""
    project = await create(client, name="Forms")
    response = await client.patch(
        f"{PROJECTS}/{project['id']}",
        json={"name": "ok"},
        headers={**who(ALICE), "If-Match": '"abc"'},
    )
    assert_error(response, 422, "validation_error")
    assert (await current(client, project["id"]))["version"] == 1


async def test_null_clears_description_and_media(client: httpx.AsyncClient) -> None:
    """description: null empties the description; media: null removes the media."""
    project = await create(
        client, name="Clear me", description="old words", media={"source": "a.mp4"}
    )
    cleared = await update(client, project["id"], 1, description=None, media=None)
    assert cleared["description"] == ""
    assert cleared["media"] is None
    assert cleared["name"] == "Clear me"
    assert await current(client, project["id"]) == cleared


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"name": None}, id="null-name"),
        pytest.param({"tags": None}, id="null-tags"),
        pytest.param({"status": None}, id="null-status"),
        pytest.param({}, id="empty"),
        pytest.param({"baseVersion": 1}, id="only-base-version"),
        pytest.param({"name": ""}, id="empty-name"),
        pytest.param({"version": 9}, id="version"),
        pytest.param({"userId": BOB}, id="owner"),
        pytest.param({"isDeleted": True}, id="isDeleted"),
        pytest.param({"baseVersion": 0, "name": "x"}, id="zero-base-version"),
    ],
)
async def test_invalid_patch_is_422_and_changes_nothing(
    client: httpx.AsyncClient, store: Store, body: Json
) -> None:
    """A patch that would null a required field, changes nothing or sets a server field is 422."""
    project = await create(client, name="Stable")
    response = await client.patch(
        f"{PROJECTS}/{project['id']}", json=body, headers=who(ALICE, if_match=1)
    )
    assert_error(response, 422, "validation_error")
    assert await current(client, project["id"]) == project
    assert store["project_versions"].count_documents({}) == 0
    assert store["audit_log"].count_documents({}) == 1


# --- soft delete and restore ----------------------------------------------------------------


async def test_soft_delete_hides_the_project_and_restore_brings_it_back(
    client: httpx.AsyncClient, store: Store
) -> None:
    """Delete hides a project everywhere; deleting again is harmless; restore undoes it."""
    project = await create(client, name="Oops")
    other = await create(client, name="Other")

    deleted = await delete(client, project["id"])
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(await get(client, project["id"]), 404, "not_found")
    assert await ids(client) == [other["id"]]
    assert await ids(client, q="oops") == []
    stored = store["projects"].find_one({"_id": project["id"]})
    assert stored is not None
    assert stored["isDeleted"] is True
    assert stored["deletedAt"] is not None
    assert stored["version"] == 2

    again = await delete(client, project["id"])
    assert again.status_code == 204
    stored = store["projects"].find_one({"_id": project["id"]})
    assert stored is not None
    assert stored["version"] == 2
    assert store["audit_log"].count_documents({"action": "project.deleted"}) == 1

    restored = await restore(client, project["id"])
    assert restored.status_code == 200, restored.text
    body = restored.json()
    assert body["version"] == 3
    assert restored.headers["ETag"] == '"3"'
    assert body["isDeleted"] is False
    assert body["deletedAt"] is None
    assert metadata(body) == metadata(project)
    assert await current(client, project["id"]) == body
    assert set(await ids(client)) == {project["id"], other["id"]}

    live = await restore(client, project["id"])
    assert live.status_code == 200
    assert live.json() == body
    assert live.headers["ETag"] == '"3"'
    assert store["audit_log"].count_documents({"action": "project.restored"}) == 1


async def test_delete_with_stale_if_match_is_412(client: httpx.AsyncClient) -> None:
    """A delete based on an old version is refused and the project stays."""
    project = await create(client, name="Guarded")
    await update(client, project["id"], 1, name="Changed")
    response = await client.delete(f"{PROJECTS}/{project['id']}", headers=who(ALICE, if_match=1))
    error = assert_error(response, 412, "version_mismatch")
    assert error["details"]["currentVersion"] == 2
    assert (await current(client, project["id"]))["isDeleted"] is False


async def test_deleted_project_cannot_be_patched(client: httpx.AsyncClient) -> None:
    """Changing a deleted project is a 404 until it is restored."""
    project = await create(client, name="Gone")
    await delete(client, project["id"])
    response = await patch(client, project["id"], 2, name="Ghost")
    assert_error(response, 404, "not_found")


# --- access control --------------------------------------------------------------------------


async def test_other_users_get_404_and_change_nothing(
    client: httpx.AsyncClient, store: Store
) -> None:
    """Another user's project looks like it does not exist, for every route."""
    project = await create(client, name="Private")
    pid = project["id"]
    base = f"{PROJECTS}/{pid}"
    attempts = [
        await client.get(base, headers=who(BOB)),
        await client.patch(base, json={"name": "pwned"}, headers=who(BOB, if_match=1)),
        await client.delete(base, headers=who(BOB)),
        await client.post(f"{base}/restore", headers=who(BOB)),
        await client.get(f"{base}/versions", headers=who(BOB)),
        await client.get(f"{base}/versions/1", headers=who(BOB)),
        await client.post(f"{base}/rollback", json={"version": 1}, headers=who(BOB)),
        await client.get(f"{base}/audit", headers=who(BOB)),
    ]
    for response in attempts:
        error = assert_error(response, 404, "not_found")
        assert "Private" not in response.text
        assert error["details"] is None
    assert await current(client, pid) == project
    assert store["audit_log"].count_documents({}) == 1
    assert store["project_versions"].count_documents({}) == 0


async def test_other_users_cannot_restore_a_deleted_project(client: httpx.AsyncClient) -> None:
    """Bob cannot bring back (or see) Alice's deleted project."""
    project = await create(client, name="Private")
    await delete(client, project["id"])
    assert_error(await restore(client, project["id"], BOB), 404, "not_found")
    assert_error(await delete(client, project["id"], BOB), 404, "not_found")
    assert_error(await get(client, project["id"]), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", PROJECTS),
        ("POST", PROJECTS),
        ("GET", f"{PROJECTS}/abc"),
        ("PATCH", f"{PROJECTS}/abc"),
        ("DELETE", f"{PROJECTS}/abc"),
        ("GET", "/api/v1/admin/projects/deleted"),
        ("GET", "/api/v1/admin/audit"),
    ],
)
async def test_no_identity_is_401(
    client: httpx.AsyncClient, store: Store, method: str, path: str
) -> None:
    """Without an identity every project route asks the caller to sign in."""
    response = await client.request(method, path, json={"name": "anon"})
    assert_error(response, 401, "unauthorized")
    assert store["projects"].count_documents({}) == 0


async def test_admin_routes_are_403_for_non_admins(client: httpx.AsyncClient) -> None:
    """A signed-in user without the admin role cannot use the admin routes."""
    project = await create(client, name="Mine")
    await delete(client, project["id"])
    for method, path in [
        ("GET", "/api/v1/admin/projects/deleted"),
        ("DELETE", f"/api/v1/admin/projects/{project['id']}"),
        ("GET", "/api/v1/admin/audit"),
    ]:
        response = await client.request(method, path, headers=who(ALICE))
        assert_error(response, 403, "forbidden")
    assert (await restore(client, project["id"])).status_code == 200


async def test_admin_lists_deleted_projects_of_every_user(client: httpx.AsyncClient) -> None:
    """Admins see everyone's soft-deleted projects, most recent deletion first."""
    alices = await create(client, ALICE, name="alice's")
    bobs = await create(client, BOB, name="bob's")
    await create(client, BOB, name="bob's live one")
    assert (await delete(client, alices["id"], ALICE)).status_code == 204
    await tick()
    assert (await delete(client, bobs["id"], BOB)).status_code == 204

    response = await client.get("/api/v1/admin/projects/deleted", headers=admin())
    assert response.status_code == 200, response.text
    page = response.json()
    assert [item["id"] for item in page["items"]] == [bobs["id"], alices["id"]]
    assert [item["userId"] for item in page["items"]] == [BOB, ALICE]
    assert all(item["isDeleted"] and item["deletedAt"] for item in page["items"])
    assert page["nextCursor"] is None

    pages = await walk(client, "/api/v1/admin/projects/deleted", admin(), limit=1)
    assert [item["id"] for page in pages for item in page] == [bobs["id"], alices["id"]]


# --- versions --------------------------------------------------------------------------------


async def three_versions(client: httpx.AsyncClient) -> list[Json]:
    """A project at version 3 (created, then updated twice); its body at each version."""
    v1 = await create(
        client,
        name="Cut one",
        description="first pass",
        tags=["rough"],
        media={"source": "raw.mp4", "durationSec": 30.0, "fps": 25},
    )
    await tick()
    v2 = await update(client, v1["id"], 1, name="Cut two", status="editing")
    await tick()
    v3 = await update(
        client,
        v1["id"],
        2,
        description="second pass",
        tags=["fine", "review"],
        media={"source": "raw.mp4", "durationSec": 28.5, "fps": 25, "width": 1280},
    )
    return [v1, v2, v3]


async def test_versions_list_every_version_newest_first(client: httpx.AsyncClient) -> None:
    """The history shows each version's metadata as it was, the current one first."""
    bodies = await three_versions(client)
    pid = bodies[0]["id"]
    response = await client.get(f"{PROJECTS}/{pid}/versions", headers=who(ALICE))
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["nextCursor"] is None
    items = page["items"]
    assert [item["version"] for item in items] == [3, 2, 1]
    assert [item["current"] for item in items] == [True, False, False]
    for item, body in zip(items, reversed(bodies), strict=True):
        assert metadata(item) == metadata(body)
        assert item["isDeleted"] is False
        assert item["createdAt"] == body["updatedAt"]


async def test_one_version_reads_as_it_was(client: httpx.AsyncClient) -> None:
    """versions/{v} returns that version's metadata; a version that never existed is 404."""
    bodies = await three_versions(client)
    pid = bodies[0]["id"]
    first = await client.get(f"{PROJECTS}/{pid}/versions/1", headers=who(ALICE))
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 1
    assert first.json()["current"] is False
    assert metadata(first.json()) == metadata(bodies[0])
    latest = (await client.get(f"{PROJECTS}/{pid}/versions/3", headers=who(ALICE))).json()
    assert latest["current"] is True
    assert metadata(latest) == metadata(bodies[2])
    missing = await client.get(f"{PROJECTS}/{pid}/versions/99", headers=who(ALICE))
    assert_error(missing, 404, "not_found")
    zero = await client.get(f"{PROJECTS}/{pid}/versions/0", headers=who(ALICE))
    assert_error(zero, 422, "validation_error")


async def test_versions_page_one_at_a_time(client: httpx.AsyncClient) -> None:
    """Paging the history with limit=1 walks 3, 2, 1 and ends."""
    bodies = await three_versions(client)
    pages = await walk(client, f"{PROJECTS}/{bodies[0]['id']}/versions", who(ALICE), limit=1)
    assert [[item["version"] for item in page] for page in pages] == [[3], [2], [1]]
    two = await walk(client, f"{PROJECTS}/{bodies[0]['id']}/versions", who(ALICE), limit=2)
    assert [[item["version"] for item in page] for page in two] == [[3, 2], [1]]


# --- rollback --------------------------------------------------------------------------------


async def test_rollback_makes_a_new_version_equal_to_the_old_one(
    client: httpx.AsyncClient,
) -> None:
    """Rolling back to v1 creates v4 with v1's metadata and keeps v2 and v3 readable."""
    bodies = await three_versions(client)
    pid = bodies[0]["id"]
    before = {
        v: (await client.get(f"{PROJECTS}/{pid}/versions/{v}", headers=who(ALICE))).json()
        for v in (1, 2)
    }
    response = await client.post(
        f"{PROJECTS}/{pid}/rollback", json={"version": 1}, headers=who(ALICE, if_match=3)
    )
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"4"'
    rolled = response.json()
    assert rolled["version"] == 4
    assert metadata(rolled) == metadata(bodies[0])
    assert await current(client, pid) == rolled

    for v in (1, 2):
        again = await client.get(f"{PROJECTS}/{pid}/versions/{v}", headers=who(ALICE))
        assert again.json() == before[v]
    three = (await client.get(f"{PROJECTS}/{pid}/versions/3", headers=who(ALICE))).json()
    assert three["current"] is False
    assert metadata(three) == metadata(bodies[2])
    history = (await client.get(f"{PROJECTS}/{pid}/versions", headers=who(ALICE))).json()
    assert [item["version"] for item in history["items"]] == [4, 3, 2, 1]


async def test_rollback_with_stale_if_match_is_412(client: httpx.AsyncClient) -> None:
    """A rollback based on an old version is refused and the project stays as it is."""
    bodies = await three_versions(client)
    pid = bodies[0]["id"]
    response = await client.post(
        f"{PROJECTS}/{pid}/rollback", json={"version": 1}, headers=who(ALICE, if_match=1)
    )
    error = assert_error(response, 412, "version_mismatch")
    assert error["details"]["currentVersion"] == 3
    assert await current(client, pid) == bodies[2]


async def test_rollback_to_a_missing_version_is_404(client: httpx.AsyncClient) -> None:
    """Rolling back to a version that never existed says so and changes nothing."""
    project = await create(client, name="Short history")
    response = await client.post(
        f"{PROJECTS}/{project['id']}/rollback", json={"version": 5}, headers=who(ALICE)
    )
    assert_error(response, 404, "not_found")
    bad = await client.post(
        f"{PROJECTS}/{project['id']}/rollback", json={"version": 0}, headers=who(ALICE)
    )
    assert_error(bad, 422, "validation_error")
    assert await current(client, project["id"]) == project


# --- audit -----------------------------------------------------------------------------------


async def test_owner_sees_the_audit_trail_of_every_change(
    client: httpx.AsyncClient, store: Store
) -> None:
    """Every change is audited once, newest first, with actor, version and request id."""
    project = await create(client, name="Audited", request_id="req-create")
    pid = project["id"]
    assert (await patch(client, pid, 1, request_id="req-update", name="A2")).status_code == 200
    stale = await patch(client, pid, 1, request_id="req-stale", name="lost")
    assert stale.status_code == 412
    assert (await delete(client, pid, request_id="req-delete")).status_code == 204
    assert (await delete(client, pid, request_id="req-delete-again")).status_code == 204
    restored = await restore(client, pid, request_id="req-restore")
    assert restored.status_code == 200
    assert restored.headers["X-Request-ID"] == "req-restore"
    assert (await restore(client, pid, request_id="req-restore-again")).status_code == 200
    rolled = await client.post(
        f"{PROJECTS}/{pid}/rollback",
        json={"version": 1},
        headers=who(ALICE, request_id="req-rollback", if_match=4),
    )
    assert rolled.status_code == 200, rolled.text

    response = await client.get(f"{PROJECTS}/{pid}/audit", headers=who(ALICE))
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["nextCursor"] is None
    entries = page["items"]
    assert [(e["action"], e["version"], e["requestId"]) for e in entries] == [
        ("project.rolled_back", 5, "req-rollback"),
        ("project.restored", 4, "req-restore"),
        ("project.deleted", 3, "req-delete"),
        ("project.updated", 2, "req-update"),
        ("project.created", 1, "req-create"),
    ]
    for entry in entries:
        assert entry["userId"] == ALICE
        assert entry["ownerId"] == ALICE
        assert entry["entity"] == "project"
        assert entry["entityId"] == pid
    assert entries[3]["summary"]["fields"] == ["name"]
    assert entries[0]["summary"]["toVersion"] == 1
    times = [datetime.fromisoformat(e["at"]) for e in entries]
    assert times == sorted(times, reverse=True)

    assert store["audit_log"].count_documents({"entityId": pid}) == 5
    versions = sorted(doc["version"] for doc in store["project_versions"].find({"projectId": pid}))
    assert versions == [1, 2, 3, 4]

    paged = await walk(client, f"{PROJECTS}/{pid}/audit", who(ALICE), limit=2)
    assert [e["id"] for page in paged for e in page] == [e["id"] for e in entries]


async def test_audit_trail_stays_readable_while_deleted(client: httpx.AsyncClient) -> None:
    """The owner can still read who deleted a project while it is deleted."""
    project = await create(client, name="Deleted but audited")
    await delete(client, project["id"])
    response = await client.get(f"{PROJECTS}/{project['id']}/audit", headers=who(ALICE))
    assert response.status_code == 200, response.text
    actions = [entry["action"] for entry in response.json()["items"]]
    assert actions == ["project.deleted", "project.created"]


async def test_admin_audit_filters_by_user_and_action(client: httpx.AsyncClient) -> None:
    """Admins search all audit entries and the filters narrow them exactly."""
    alices = await create(client, ALICE, name="a")
    bobs = await create(client, BOB, name="b")
    await update(client, alices["id"], 1, ALICE, name="a2")
    await update(client, alices["id"], 2, ALICE, name="a3")
    await update(client, bobs["id"], 1, BOB, name="b2")

    response = await client.get(
        "/api/v1/admin/audit",
        params={"userId": ALICE, "action": "project.updated"},
        headers=admin(),
    )
    assert response.status_code == 200, response.text
    entries = response.json()["items"]
    assert [(e["userId"], e["action"], e["entityId"], e["version"]) for e in entries] == [
        (ALICE, "project.updated", alices["id"], 3),
        (ALICE, "project.updated", alices["id"], 2),
    ]
    everything = (await client.get("/api/v1/admin/audit", headers=admin())).json()["items"]
    assert len(everything) == 5
    by_entity = await client.get(
        "/api/v1/admin/audit", params={"entityId": bobs["id"]}, headers=admin()
    )
    assert [e["action"] for e in by_entity.json()["items"]] == [
        "project.updated",
        "project.created",
    ]
    created = await client.get(
        "/api/v1/admin/audit", params={"action": "project.created"}, headers=admin()
    )
    assert {e["entityId"] for e in created.json()["items"]} == {alices["id"], bobs["id"]}
    injected = await client.get("/api/v1/admin/audit", params={"userId": "$ne"}, headers=admin())
    assert_error(injected, 422, "validation_error")


async def test_admin_audit_time_range(client: httpx.AsyncClient) -> None:
    """since/until bound the admin audit search by time."""
    project = await create(client, name="timed")
    await tick()
    changed = await update(client, project["id"], 1, name="timed 2")
    since = changed["updatedAt"]
    after = await client.get("/api/v1/admin/audit", params={"since": since}, headers=admin())
    assert [e["action"] for e in after.json()["items"]] == ["project.updated"]
    before = await client.get("/api/v1/admin/audit", params={"until": since}, headers=admin())
    assert [e["action"] for e in before.json()["items"]] == ["project.created"]


@pytest.mark.parametrize("value", ["0.5", "1700000000", "-3", "1e9", "yesterday"])
async def test_admin_audit_times_are_written_times_only(
    client: httpx.AsyncClient, value: str
) -> None:
    """A number is not a time: `?until=0.5` was read as half a second after 1970."""
    for name in ("since", "until"):
        answer = await client.get("/api/v1/admin/audit", params={name: value}, headers=admin())
        assert_error(answer, 422, "validation_error")


# --- purge -----------------------------------------------------------------------------------


def add_dependents(store: Store, project_id: str, user: str) -> None:
    """One document per collection a project owns, as the other domains would write them."""
    store["timelines"].insert_one({"projectId": project_id, "version": 1, "state": {}})
    store["timeline_revisions"].insert_many(
        [{"projectId": project_id, "version": v, "ops": []} for v in (1, 2)]
    )
    store["transcripts"].insert_one({"projectId": project_id, "language": "en"})
    store["transcript_segments"].insert_many(
        [{"projectId": project_id, "start": s, "text": "hello"} for s in (0.0, 1.5)]
    )
    store["editing_sessions"].insert_one({"projectId": project_id, "userId": user})


def owned_counts(store: Store, project_id: str) -> dict[str, int]:
    return {
        name: store[name].count_documents({"projectId": project_id})
        for name in (*DEPENDENT_COLLECTIONS, "project_versions")
    }


async def test_purge_removes_a_deleted_project_and_everything_it_owns(
    client: httpx.AsyncClient, store: Store
) -> None:
    """An admin purge deletes the project, its history and its data; the audit entry stays."""
    doomed = await create(client, name="Doomed")
    kept = await create(client, name="Kept")
    await update(client, doomed["id"], 1, name="Doomed 2")
    await update(client, kept["id"], 1, name="Kept 2")
    add_dependents(store, doomed["id"], ALICE)
    add_dependents(store, kept["id"], ALICE)
    kept_before = owned_counts(store, kept["id"])

    live = await client.delete(f"/api/v1/admin/projects/{doomed['id']}", headers=admin())
    assert_error(live, 409, "conflict")
    assert (await current(client, doomed["id"]))["version"] == 2
    assert owned_counts(store, doomed["id"])["timelines"] == 1

    assert (await delete(client, doomed["id"])).status_code == 204
    response = await client.delete(f"/api/v1/admin/projects/{doomed['id']}", headers=admin())
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["projectId"] == doomed["id"]
    assert report["deleted"]["projects"] == 1
    assert report["deleted"]["project_versions"] == 2
    assert report["deleted"]["timelines"] == 1
    assert report["deleted"]["timeline_revisions"] == 2
    assert report["deleted"]["transcripts"] == 1
    assert report["deleted"]["transcript_segments"] == 2
    assert report["deleted"]["editing_sessions"] == 1

    assert store["projects"].find_one({"_id": doomed["id"]}) is None
    assert owned_counts(store, doomed["id"]) == dict.fromkeys(owned_counts(store, "x"), 0)
    assert owned_counts(store, kept["id"]) == kept_before
    assert (await current(client, kept["id"]))["name"] == "Kept 2"
    assert_error(await restore(client, doomed["id"]), 404, "not_found")
    deleted_list = (await client.get("/api/v1/admin/projects/deleted", headers=admin())).json()
    assert deleted_list["items"] == []

    purged = await client.get(
        "/api/v1/admin/audit", params={"entityId": doomed["id"]}, headers=admin()
    )
    entries = purged.json()["items"]
    assert entries[0]["action"] == "project.purged"
    assert entries[0]["userId"] == ROOT
    assert entries[0]["ownerId"] == ALICE
    assert store["audit_log"].count_documents({"action": "project.purged"}) == 1

    again = await client.delete(f"/api/v1/admin/projects/{doomed['id']}", headers=admin())
    assert_error(again, 404, "not_found")


# --- OpenAPI ---------------------------------------------------------------------------------


async def test_openapi_documents_the_project_routes(client: httpx.AsyncClient) -> None:
    """The OpenAPI document describes the project routes, models and error responses."""
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    schemas = spec["components"]["schemas"]
    for name in ("Project", "ProjectCreate", "ProjectUpdate", "ErrorResponse"):
        assert name in schemas, sorted(schemas)
    assert {"id", "userId", "createdAt", "isDeleted", "version"} <= set(
        schemas["Project"]["properties"]
    )
    assert not {"id", "userId", "version", "createdAt"} & set(
        schemas["ProjectCreate"]["properties"]
    )
    assert "baseVersion" in schemas["ProjectUpdate"]["properties"]

    paths = spec["paths"]
    for path in (
        PROJECTS,
        f"{PROJECTS}/{{project_id}}",
        f"{PROJECTS}/{{project_id}}/restore",
        f"{PROJECTS}/{{project_id}}/versions",
        f"{PROJECTS}/{{project_id}}/versions/{{version}}",
        f"{PROJECTS}/{{project_id}}/rollback",
        f"{PROJECTS}/{{project_id}}/audit",
        "/api/v1/admin/projects/deleted",
        "/api/v1/admin/projects/{project_id}",
        "/api/v1/admin/audit",
    ):
        assert path in paths, sorted(paths)

    create_op = paths[PROJECTS]["post"]
    body_schema = create_op["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema["$ref"] == "#/components/schemas/ProjectCreate"
    assert "201" in create_op["responses"]

    patch_op = paths[f"{PROJECTS}/{{project_id}}"]["patch"]
    patch_body = patch_op["requestBody"]["content"]["application/json"]["schema"]
    assert patch_body["$ref"] == "#/components/schemas/ProjectUpdate"
    responses = patch_op["responses"]
    ok = responses["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"] == "#/components/schemas/Project"
    for code in ("404", "412", "422"):
        assert code in responses, sorted(responses)
        schema = responses[code]["content"]["application/json"]["schema"]
        assert schema["$ref"] == "#/components/schemas/ErrorResponse"
    header_names = {p["name"] for p in patch_op["parameters"] if p["in"] == "header"}
    assert "If-Match" in header_names
