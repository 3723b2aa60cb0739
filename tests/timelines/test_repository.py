"""Storing what a head committed: idempotent for a revision already stored, and the
leftover of an uncommitted change (an older release wrote revisions before the commit)
gives way; a commit moves only the head at the version it was planned on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from snipix.db.client import Database
from snipix.timelines.repository import (
    HEADS,
    REVISIONS,
    SNAPSHOTS,
    TimelineRepository,
    versioned_id,
)

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def revision(author: str, at: datetime, version: int = 3) -> dict[str, Any]:
    return {
        "_id": versioned_id("p1", version),
        "projectId": "p1",
        "version": version,
        "kind": "patch",
        "label": author,
        "authorId": author,
        "createdAt": at,
        "patch": [{"op": "replace", "path": "/fps", "value": 30}],
        "inverse": [{"op": "replace", "path": "/fps", "value": 25}],
        "opCount": 1,
    }


async def test_storing_a_stored_revision_again_changes_nothing(db: Database) -> None:
    """Two writers may store what one head carried: one copy, as committed."""
    timelines = TimelineRepository(db)
    committed = revision("editor", T0)
    await timelines.store([committed], [])
    await timelines.store([committed, revision("editor", T0, version=4)], [])
    assert await db[REVISIONS].count_documents({"projectId": "p1"}) == 2
    stored = await db[REVISIONS].find_one({"_id": versioned_id("p1", 3)})
    assert stored == committed
    assert await timelines.stored_versions("p1", [2, 3, 4, 5]) == {3, 4}


async def test_the_leftover_of_an_uncommitted_change_is_replaced(db: Database) -> None:
    """An older release wrote a revision (and snapshot) before its head commit; a crash left
    one above the head. Storing the committed revision of that version replaces it, for
    revisions and snapshots alike, also a leftover with no time."""
    timelines = TimelineRepository(db)
    await db[REVISIONS].insert_one(revision("crashed", T0))
    await timelines.store([revision("next", T0 + timedelta(seconds=15))], [])
    stored = await db[REVISIONS].find_one({"_id": versioned_id("p1", 3)})
    assert stored is not None
    assert stored["authorId"] == "next"

    old = {"_id": versioned_id("p1", 50), "projectId": "p1", "version": 50, "state": {}}
    await db[SNAPSHOTS].insert_one(old)
    await timelines.store([], [{**old, "state": {"fps": 30}, "createdAt": T0}])
    snapshot = await db[SNAPSHOTS].find_one({"_id": old["_id"]})
    assert snapshot is not None
    assert snapshot["state"] == {"fps": 30}


async def test_a_commit_moves_only_the_head_at_its_version(db: Database) -> None:
    """The commit is conditioned on the version the change was planned on (and on the
    head's time, for a head the writer remembers): a head moved on is left alone."""
    timelines = TimelineRepository(db)
    head = {"_id": "p1", "projectId": "p1", "version": 2, "state": {}, "updatedAt": T0}
    assert await timelines.create_head(head)
    assert not await timelines.create_head(head), "the first head exists"
    carried = [revision("a", T0)]
    assert not await timelines.commit("p1", 1, {"state.fps": 30}, [], carried)
    assert not await timelines.commit(
        "p1", 2, {"state.fps": 30}, [], carried, updated_at=T0 - timedelta(seconds=1)
    )
    assert await timelines.commit("p1", 2, {"state.fps": 30}, [], carried, updated_at=T0)
    stored = await db[HEADS].find_one({"_id": "p1"})
    assert stored is not None
    assert (stored["version"], stored["state"], stored["recent"]) == (3, {"fps": 30}, carried)
