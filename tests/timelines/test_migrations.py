"""Timelines stored with the web app's block as `legacy` are read, undone and redone after
the migration that renames it `compat`; a second run changes nothing."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from snipix.catalogue import MIGRATIONS
from snipix.db.client import Database
from snipix.db.migrations import COLLECTION as MIGRATION_RECORDS
from snipix.db.migrations import MigrationRunner
from snipix.timelines.migrations import rename_compat_blocks, rename_in_patch, rename_in_state
from snipix.timelines.repository import HEADS, REVISIONS, SNAPSHOTS
from tests.compat.envelopes import OWNER, data
from tests.compat.samples import assert_same, web_app_timeline
from tests.compat.test_timeline import current, moved, save

MIGRATION = "0002_timeline_compat_blocks"
STORED = (HEADS, REVISIONS, SNAPSHOTS)


@pytest.fixture
async def project_id(client: httpx.AsyncClient) -> str:
    created = await client.post("/projects", json={"name": "Wedding"}, headers=OWNER)
    return str(data(created)["_id"])


def _aged(document: dict[str, Any]) -> dict[str, Any]:
    """The document as the previous build stored it: `legacy` where `compat` is now."""
    text = json.dumps(document, default=str)
    aged: dict[str, Any] = json.loads(
        text.replace('"compat"', '"legacy"').replace("/compat", "/legacy")
    )
    return aged


async def _stored(db: Database, project_id: str) -> dict[str, list[dict[str, Any]]]:
    return {
        name: await db[name].find({"projectId": project_id}).sort("_id", 1).to_list()
        for name in STORED
    }


async def test_a_timeline_stored_as_legacy_is_read_undone_and_redone_after_the_migration(
    client: httpx.AsyncClient, db: Database, project_id: str
) -> None:
    first = web_app_timeline()
    await save(client, project_id, first)
    await save(client, project_id, moved(first), "Title moved")
    before = await _stored(db, project_id)
    assert '"compat"' in json.dumps(before, default=str)
    # The previous build's documents, and a database that has not run the migration.
    for name, documents in before.items():
        for document in documents:
            aged = {k: v for k, v in _aged(document).items() if k in ("state", "patch", "inverse")}
            await db[name].update_one({"_id": document["_id"]}, {"$set": aged})
    assert '"legacy"' in json.dumps(await _stored(db, project_id), default=str)
    await db[MIGRATION_RECORDS].delete_one({"_id": MIGRATION})

    assert await MigrationRunner(db, MIGRATIONS).migrate() == [MIGRATION]

    migrated = await _stored(db, project_id)
    text = json.dumps(migrated, default=str)
    assert '"legacy"' not in text
    assert "/legacy" not in text
    assert migrated == before
    undone = await client.post(f"/api/v1/projects/{project_id}/timeline/undo", headers=OWNER)
    assert undone.status_code == 200
    clips = undone.json()["state"]["clips"]
    assert all("legacy" not in clip and "compat" in clip for clip in clips)
    assert_same((await current(client, project_id))["timeline_state"], first)
    redone = await client.post(f"/api/v1/projects/{project_id}/timeline/redo", headers=OWNER)
    assert redone.status_code == 200
    assert_same((await current(client, project_id))["timeline_state"], moved(first))
    history = data(await client.get(f"/timeline/{project_id}/history", headers=OWNER))
    assert len(history) == 4


async def test_a_second_run_changes_nothing(
    client: httpx.AsyncClient, db: Database, project_id: str
) -> None:
    await save(client, project_id, web_app_timeline())
    before = await _stored(db, project_id)
    await rename_compat_blocks(db)
    assert await _stored(db, project_id) == before


def test_a_patch_is_renamed_in_paths_sources_and_whole_values() -> None:
    clip = {"id": "c1", "legacy": {"type": "video"}}
    patch = [
        {"op": "replace", "path": "/clips/0/legacy/startTime", "value": 1},
        {"op": "move", "from": "/clips/1/legacy/content", "path": "/clips/0/legacy/content"},
        {"op": "add", "path": "/clips/-", "value": clip},
        {"op": "add", "path": "/tracks/2", "value": {"id": "t", "legacy": {"type": "text"}}},
        {"op": "replace", "path": "/clips", "value": [clip]},
        {"op": "replace", "path": "", "value": {"tracks": [], "clips": [clip], "view": {}}},
        {"op": "replace", "path": "/view/legacy", "value": {"legacy": 1}},
        {"op": "add", "path": "/clips/0/properties/x", "value": {"legacy": 1}},
    ]
    renamed_clip = {"id": "c1", "compat": {"type": "video"}}
    assert rename_in_patch(patch) == [
        {"op": "replace", "path": "/clips/0/compat/startTime", "value": 1},
        {"op": "move", "from": "/clips/1/compat/content", "path": "/clips/0/compat/content"},
        {"op": "add", "path": "/clips/-", "value": renamed_clip},
        {"op": "add", "path": "/tracks/2", "value": {"id": "t", "compat": {"type": "text"}}},
        {"op": "replace", "path": "/clips", "value": [renamed_clip]},
        {"op": "replace", "path": "", "value": {"tracks": [], "clips": [renamed_clip], "view": {}}},
        # Not a track's or a clip's block: a user's own names are left alone.
        {"op": "replace", "path": "/view/legacy", "value": {"legacy": 1}},
        {"op": "add", "path": "/clips/0/properties/x", "value": {"legacy": 1}},
    ]
    assert rename_in_state({"clips": [clip], "tracks": [{"legacy": {}, "id": "t"}]}) == {
        "clips": [renamed_clip],
        "tracks": [{"compat": {}, "id": "t"}],
    }
