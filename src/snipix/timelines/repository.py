"""Every query on `timelines`, `timeline_revisions` and `timeline_snapshots`.

The head document (`timelines`, `_id` = project id) is the commit point. A change moves
it in one update that also carries the change's revision (and any earlier revision not yet
stored) in its `recent` list; the revision is copied into `timeline_revisions` (and a due
snapshot into `timeline_snapshots`) after the commit. Until then the head is where readers
find it: the service reads both. A revision above the head's version can only be the
leftover of an older release's uncommitted change; it is invisible to every read here and
replaced when that version is stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import BulkWriteError, DuplicateKeyError

from snipix.db.client import Database, Document

HEADS = "timelines"
REVISIONS = "timeline_revisions"
SNAPSHOTS = "timeline_snapshots"
# Where autosaves' Idempotency-Keys were kept before each was stored with its change
# (a claim, then a revision); dropped by the `timeline_keys_in_revisions` migration.
RETIRED_KEYS = "idempotency_keys"

DUPLICATE_KEY = 11000

_REVISION_SUMMARY = {
    "_id": 0,
    "version": 1,
    "kind": 1,
    "label": 1,
    "authorId": 1,
    "createdAt": 1,
    "opCount": 1,
}


_HEAD_FIELDS = {
    "_id": 1,
    "projectId": 1,
    "userId": 1,
    "version": 1,
    "state": 1,
    "undoStack": 1,
    "redoStack": 1,
    "recent": 1,
    "updatedAt": 1,
}
_CURRENT_FIELDS = {name: 1 for name in _HEAD_FIELDS if name != "recent"}
_REVISION_FIELDS = {
    "_id": 0,
    "version": 1,
    "kind": 1,
    "label": 1,
    "patch": 1,
    "inverse": 1,
    "idempotencyKey": 1,
}


def versioned_id(project_id: str, version: int) -> str:
    return f"{project_id}:{version}"


class TimelineRepository:
    def __init__(self, db: Database) -> None:
        self._heads = db[HEADS]
        self._revisions = db[REVISIONS]
        self._snapshots = db[SNAPSHOTS]

    # --- head -----------------------------------------------------------------------------

    async def head(self, project_id: str) -> Document | None:
        """The head as a change starts from it, with the revisions it carries."""
        return await self._heads.find_one({"_id": project_id}, _HEAD_FIELDS)

    async def current(self, project_id: str) -> Document | None:
        """The head as an editor opens it: without the revisions it carries."""
        return await self._heads.find_one({"_id": project_id}, _CURRENT_FIELDS)

    async def head_version(self, project_id: str) -> Document | None:
        return await self._heads.find_one(
            {"_id": project_id},
            {"_id": 1, "version": 1, "undoStack": 1, "redoStack": 1, "recent": 1},
        )

    async def create_head(self, doc: Document) -> bool:
        """Insert the first head (the first change, committed); False if another writer
        was first."""
        try:
            await self._heads.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def commit(
        self,
        project_id: str,
        version: int,
        sets: dict[str, Any],
        unsets: list[str],
        recent: list[Document],
        *,
        updated_at: datetime | None = None,
    ) -> bool:
        """Move the head from `version` to the next one, with the revisions not yet stored
        (`recent`, the new one last): one single-document update, the change's commit.

        False when the head is no longer at `version` (another change was committed first)
        or, with `updated_at` (the head's time as the writer remembers it, instead of a head
        it just read), when anything else rewrote the head since, a restore too.
        """
        condition: Document = {"_id": project_id, "version": version}
        if updated_at is not None:
            condition["updatedAt"] = updated_at
        update: dict[str, Any] = {"$set": {**sets, "version": version + 1, "recent": recent}}
        # `pending`: the claim an older release of the service kept on the head.
        update["$unset"] = dict.fromkeys([*unsets, "pending"], "")
        result = await self._heads.update_one(condition, update)
        return result.modified_count == 1

    # --- revisions and snapshots ------------------------------------------------------------

    async def store(self, revisions: list[Document], snapshots: list[Document]) -> None:
        """Copy committed revisions (and snapshots) from the head into their collections,
        each list in one batch.

        Idempotent: a copy already there is left alone, so any writer may store what a
        head carries without knowing whether another one already did.
        """
        await _put(self._revisions, revisions)
        await _put(self._snapshots, snapshots)

    async def stored_versions(self, project_id: str, versions: list[int]) -> set[int]:
        """Which of `versions` are in the revision collection (read by `_id`)."""
        if not versions:
            return set()
        found = self._revisions.find(
            {"_id": {"$in": [versioned_id(project_id, version) for version in versions]}},
            {"_id": 0, "version": 1},
        )
        return {doc["version"] for doc in await found.to_list()}

    async def revision(self, project_id: str, version: int) -> Document | None:
        return await self._revisions.find_one(
            {"_id": versioned_id(project_id, version)}, _REVISION_FIELDS
        )

    async def history(
        self, project_id: str, *, head_version: int, before: int | None, limit: int
    ) -> list[Document]:
        """Revision summaries, newest first, never above the head."""
        upper = head_version if before is None else min(before - 1, head_version)
        found = self._revisions.find(
            {"projectId": project_id, "version": {"$lte": upper}},
            _REVISION_SUMMARY,
            hint="by_version",
        )
        return await found.sort("version", DESCENDING).limit(limit).to_list()

    async def revision_with_key(
        self, project_id: str, key_id: str, *, upto: int
    ) -> Document | None:
        """The stored revision made under an idempotency key (at most one: a keyed change
        is committed only on the head this search, and the head's own `recent`, found
        without it)."""
        found = self._revisions.find(
            {"projectId": project_id, "idempotencyKey": key_id, "version": {"$lte": upto}},
            {"_id": 0, "version": 1, "createdAt": 1, "authorId": 1, "requestHash": 1},
            hint="by_key",
        )
        matches = await found.limit(1).to_list()
        return matches[0] if matches else None

    async def nearest_snapshot(self, project_id: str, version: int) -> Document | None:
        found = self._snapshots.find(
            {"projectId": project_id, "version": {"$lte": version}},
            {"_id": 0, "version": 1, "state": 1},
            hint="by_version",
        )
        snapshots = await found.sort("version", DESCENDING).limit(1).to_list()
        return snapshots[0] if snapshots else None

    async def revisions_between(self, project_id: str, after: int, upto: int) -> list[Document]:
        """Forward patches and inverses of versions after..upto, oldest first: what a stale
        patch is merged over (at most the merge window of them)."""
        return await self._range(project_id, after, upto, ("patch", "inverse"))

    async def patches_between(self, project_id: str, after: int, upto: int) -> list[Document]:
        """Forward patches of versions after..upto, oldest first (at most K of them)."""
        return await self._range(project_id, after, upto, ("patch",))

    async def revisions_after(self, project_id: str, after: int, upto: int) -> list[Document]:
        """Revisions after..upto, oldest first, as a live event stream replays them."""
        fields = ("patch", "authorId", "kind", "label", "createdAt")
        return await self._range(project_id, after, upto, fields)

    async def _range(
        self, project_id: str, after: int, upto: int, fields: tuple[str, ...]
    ) -> list[Document]:
        """The stored revisions of versions after..upto, oldest first, with `fields`: one
        query shape (project equality, version range, `by_version`) for every reader."""
        if upto <= after:
            return []
        found = self._revisions.find(
            {"projectId": project_id, "version": {"$gt": after, "$lte": upto}},
            {"_id": 0, "version": 1, **dict.fromkeys(fields, 1)},
            hint="by_version",
        )
        return await found.sort("version", ASCENDING).limit(upto - after).to_list()


async def _put(collection: Any, documents: list[Document]) -> None:
    """Insert `documents` (one unordered batch), replacing a different document found under
    the same `_id`.

    A revision or snapshot is only ever written from the head that committed it, so the
    copy already there is either this one (a second writer storing what a head carried:
    left alone) or the leftover of a change that was never committed (written before its
    commit by an older release of the service, which a crash interrupted): replaced. An
    insert and a replace by `_id` read one key; the embedded engine makes an inserting
    upsert scan the collection (docs/decisions.md, "Performance").
    """
    if not documents:
        return
    try:
        await collection.insert_many(documents, ordered=False)
    except BulkWriteError as error:
        failures = error.details.get("writeErrors", [])
        if any(entry.get("code") != DUPLICATE_KEY for entry in failures):
            raise
        for entry in failures:
            document = documents[entry["index"]]
            await collection.replace_one(
                {"_id": document["_id"], "createdAt": {"$ne": document["createdAt"]}}, document
            )
