"""The revision write under a claim: a leftover of an older claim is replaced, a newer
writer's revision never is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from snipix.db.client import Database
from snipix.errors import Conflict
from snipix.timelines.repository import REVISIONS, SNAPSHOTS, TimelineRepository, versioned_id

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def revision(author: str, at: datetime) -> dict[str, Any]:
    return {
        "_id": versioned_id("p1", 3),
        "projectId": "p1",
        "version": 3,
        "kind": "patch",
        "label": author,
        "authorId": author,
        "createdAt": at,
        "patch": [{"op": "replace", "path": "/fps", "value": 30}],
        "inverse": [{"op": "replace", "path": "/fps", "value": 25}],
        "opCount": 1,
    }


async def test_a_stalled_writer_never_overwrites_the_revision_of_the_one_that_took_over(
    db: Database,
) -> None:
    """Writer A claimed version 3 at T0 and stalled past its claim's grace; writer B took
    the claim over at T0 + 15 s and wrote (and committed) revision 3. A waking up finds the
    revision there: a Conflict, and B's revision stays."""
    timelines = TimelineRepository(db)
    await timelines.put_revision(revision("writer-b", T0 + timedelta(seconds=15)))
    with pytest.raises(Conflict):
        await timelines.put_revision(revision("writer-a", T0))
    stored = await db[REVISIONS].find_one({"_id": versioned_id("p1", 3)})
    assert stored is not None
    assert stored["authorId"] == "writer-b"


async def test_the_leftover_of_an_older_claim_is_replaced(db: Database) -> None:
    """A crashed writer's unacknowledged revision (older claim) gives way to the new one,
    for revisions and snapshots alike; a leftover written before claims were compared
    (no time) gives way too."""
    timelines = TimelineRepository(db)
    await timelines.put_revision(revision("crashed", T0))
    await timelines.put_revision(revision("next", T0 + timedelta(seconds=15)))
    stored = await db[REVISIONS].find_one({"_id": versioned_id("p1", 3)})
    assert stored is not None
    assert stored["authorId"] == "next"

    old = {"_id": versioned_id("p1", 50), "projectId": "p1", "version": 50, "state": {}}
    await db[SNAPSHOTS].insert_one(old)
    newer = {**old, "state": {"fps": 30}, "createdAt": T0}
    await timelines.put_snapshot(newer)
    snapshot = await db[SNAPSHOTS].find_one({"_id": old["_id"]})
    assert snapshot is not None
    assert snapshot["state"] == {"fps": 30}
