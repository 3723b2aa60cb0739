"""What a client sees of the cache: `X-Cache`, and never a stale read after a write.

These run against whatever cache the run uses (a real redis-server by default, the
in-process cache or an unreachable Redis with SNIPIX_TEST_CACHE): the answers must be the
same in every mode; only `X-Cache` differs.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from pymongo.database import Database

from snipix.settings import Settings
from tests.conftest import TEST_CACHE

Json = dict[str, Any]
PROJECTS = "/api/v1/projects"
ALICE = {"X-User-Id": "alice"}
BOB = {"X-User-Id": "bob"}
# With an unreachable Redis every lookup bypasses the cache; otherwise the second read hits.
REPEAT = "bypass" if TEST_CACHE == "redis-down" else "hit"
FIRST = "bypass" if TEST_CACHE == "redis-down" else "miss"


@pytest.fixture
def store(mongo: MongoClient[dict[str, Any]], settings: Settings) -> Database[dict[str, Any]]:
    return mongo[settings.database_name]


async def create(client: httpx.AsyncClient, name: str, headers: dict[str, str] = ALICE) -> Json:
    response = await client.post(PROJECTS, json={"name": name}, headers=headers)
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


async def test_a_project_read_twice_is_a_miss_then_a_hit(client: httpx.AsyncClient) -> None:
    """The second read of a project is served from the cache, with the same body and ETag."""
    project = await create(client, "Cached")
    first = await client.get(f"{PROJECTS}/{project['id']}", headers=ALICE)
    second = await client.get(f"{PROJECTS}/{project['id']}", headers=ALICE)
    assert first.status_code == second.status_code == 200
    assert first.headers["X-Cache"] == FIRST
    assert second.headers["X-Cache"] == REPEAT
    assert first.json() == second.json() == project
    assert first.headers["ETag"] == second.headers["ETag"] == '"1"'


async def test_an_update_is_read_back_at_once(client: httpx.AsyncClient) -> None:
    """After a change, the very next read shows it (the cached version is not served)."""
    project = await create(client, "Before")
    url = f"{PROJECTS}/{project['id']}"
    await client.get(url, headers=ALICE)
    await client.get(url, headers=ALICE)
    for version in range(1, 6):
        changed = await client.patch(
            url, json={"name": f"After {version}"}, headers={**ALICE, "If-Match": f'"{version}"'}
        )
        assert changed.status_code == 200, changed.text
        read = await client.get(url, headers=ALICE)
        assert read.json()["name"] == f"After {version}"
        assert read.headers["ETag"] == f'"{version + 1}"'


async def test_a_deleted_project_is_gone_from_reads_and_lists_at_once(
    client: httpx.AsyncClient,
) -> None:
    """Delete, then read: 404 and absent from the (previously cached) list."""
    project = await create(client, "Doomed")
    url = f"{PROJECTS}/{project['id']}"
    assert [p["id"] for p in (await client.get(PROJECTS, headers=ALICE)).json()["items"]] == [
        project["id"]
    ]
    await client.get(url, headers=ALICE)
    deleted = await client.delete(url, headers={**ALICE, "If-Match": '"1"'})
    assert deleted.status_code == 204
    assert (await client.get(url, headers=ALICE)).status_code == 404
    assert (await client.get(PROJECTS, headers=ALICE)).json()["items"] == []
    restored = await client.post(f"{url}/restore", headers={**ALICE, "If-Match": '"2"'})
    assert restored.status_code == 200
    assert (await client.get(url, headers=ALICE)).json()["version"] == 3


async def test_list_pages_are_cached_until_a_project_changes(client: httpx.AsyncClient) -> None:
    """A list read twice is a hit; creating a project shows up in the next list."""
    await create(client, "One")
    first = await client.get(PROJECTS, headers=ALICE)
    again = await client.get(PROJECTS, headers=ALICE)
    assert again.headers["X-Cache"] == REPEAT
    assert again.json() == first.json()
    await create(client, "Two")
    after = await client.get(PROJECTS, headers=ALICE)
    assert [p["name"] for p in after.json()["items"]] == ["Two", "One"]
    assert after.headers["X-Cache"] == FIRST


async def test_a_cached_project_is_never_served_to_another_user(client: httpx.AsyncClient) -> None:
    """Bob gets 404 for Alice's project even right after Alice's read cached it."""
    project = await create(client, "Private")
    url = f"{PROJECTS}/{project['id']}"
    await client.get(url, headers=ALICE)
    await client.get(url, headers=ALICE)
    response = await client.get(url, headers=BOB)
    assert response.status_code == 404
    assert (await client.get(PROJECTS, headers=BOB)).json()["items"] == []


async def test_timeline_reads_are_cached_and_a_save_is_read_back(
    client: httpx.AsyncClient,
) -> None:
    """The current timeline is cached; an autosave is visible in the next read, which the
    cache answers (the save wrote its state through) exactly as the save did."""
    project = await create(client, "Edit")
    url = f"{PROJECTS}/{project['id']}/timeline"
    state = {"tracks": [{"id": "v1", "kind": "video"}], "clips": []}
    saved = await client.put(url, json={"state": state}, headers={**ALICE, "If-Match": '"0"'})
    assert saved.status_code == 200, saved.text
    first = await client.get(url, headers=ALICE)
    second = await client.get(url, headers=ALICE)
    assert second.headers["X-Cache"] == REPEAT
    assert first.json() == second.json()
    patch = [{"op": "add", "path": "/markers/-", "value": {"id": "m1", "time": 2.5}}]
    patched = await client.patch(
        url,
        json=patch,
        headers={**ALICE, "If-Match": '"1"', "Content-Type": "application/json-patch+json"},
    )
    assert patched.status_code == 200, patched.text
    read = await client.get(url, headers=ALICE)
    assert read.headers["X-Cache"] == REPEAT
    assert read.json()["version"] == 2
    assert read.json()["state"]["markers"][0]["id"] == "m1"
    assert read.json() == patched.json()
    assert read.headers["ETag"] == patched.headers["ETag"]
    undone = await client.post(f"{url}/undo", headers={**ALICE, "If-Match": '"2"'})
    assert undone.status_code == 200, undone.text
    after_undo = await client.get(url, headers=ALICE)
    assert after_undo.headers["X-Cache"] == REPEAT
    assert after_undo.json() == undone.json()
    assert after_undo.json()["state"]["markers"] == []


# --- Idempotency-Key on create -------------------------------------------------------------


async def test_a_repeated_create_with_the_same_key_creates_one_project(
    client: httpx.AsyncClient, store: Database[dict[str, Any]]
) -> None:
    """A client retrying a create after a lost answer gets the same project back."""
    headers = {**ALICE, "Idempotency-Key": "create-1"}
    first = await client.post(PROJECTS, json={"name": "Once"}, headers=headers)
    second = await client.post(PROJECTS, json={"name": "Once"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert first.json() == second.json()
    assert store.projects.count_documents({}) == 1
    assert store.audit_log.count_documents({"action": "project.created"}) == 1


async def test_a_key_reused_for_a_different_project_is_refused(
    client: httpx.AsyncClient, store: Database[dict[str, Any]]
) -> None:
    """The same key with another body is 422 and creates nothing more."""
    headers = {**ALICE, "Idempotency-Key": "create-2"}
    assert (await client.post(PROJECTS, json={"name": "A"}, headers=headers)).status_code == 201
    reused = await client.post(PROJECTS, json={"name": "B"}, headers=headers)
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "validation_error"
    assert "Idempotency-Key" in reused.json()["error"]["message"]
    assert store.projects.count_documents({}) == 1


async def test_keys_are_per_user(client: httpx.AsyncClient) -> None:
    """Two users may use the same key: each gets their own project."""
    alice = await client.post(
        PROJECTS, json={"name": "Mine"}, headers={**ALICE, "Idempotency-Key": "k"}
    )
    bob = await client.post(
        PROJECTS, json={"name": "Mine"}, headers={**BOB, "Idempotency-Key": "k"}
    )
    assert alice.status_code == bob.status_code == 201
    assert alice.json()["id"] != bob.json()["id"]
    assert bob.json()["userId"] == "bob"


async def test_if_none_match_with_the_current_etag_is_304_without_a_body(
    client: httpx.AsyncClient,
) -> None:
    """A client holding the current version gets 304 and no body; after a change, 200."""
    project = await create(client, "Conditional")
    url = f"{PROJECTS}/{project['id']}"
    unchanged = await client.get(url, headers={**ALICE, "If-None-Match": '"1"'})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["ETag"] == '"1"'
    assert (
        await client.get(url, headers={**ALICE, "If-None-Match": 'W/"1", "7"'})
    ).status_code == 304
    changed = await client.patch(
        url, json={"name": "Changed"}, headers={**ALICE, "If-Match": '"1"'}
    )
    assert changed.status_code == 200
    again = await client.get(url, headers={**ALICE, "If-None-Match": '"1"'})
    assert again.status_code == 200
    assert again.json()["name"] == "Changed"
    timeline = await client.get(f"{url}/timeline", headers={**ALICE, "If-None-Match": '"0"'})
    assert timeline.status_code == 304
