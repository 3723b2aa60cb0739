"""Every query on `timelines`, `timeline_revisions` and `timeline_snapshots`.

The head document (`timelines`, `_id` = project id) is the commit point: a revision or
snapshot with a version above the head's was never acknowledged (a crash between writes)
and is invisible to every read here; the next change at that version overwrites it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from snipix.db.client import Database, Document
from snipix.errors import Conflict

HEADS = "timelines"
REVISIONS = "timeline_revisions"
SNAPSHOTS = "timeline_snapshots"
# Where autosaves' Idempotency-Keys were kept before each was stored with its change
# (a claim, then a revision); dropped by the `timeline_keys_in_revisions` migration.
RETIRED_KEYS = "idempotency_keys"

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
    "pending": 1,
    "updatedAt": 1,
}
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

    async def head(
        self, project_id: str, *, session: AsyncClientSession | None = None
    ) -> Document | None:
        return await self._heads.find_one({"_id": project_id}, _HEAD_FIELDS, session=session)

    async def head_version(self, project_id: str) -> Document | None:
        return await self._heads.find_one(
            {"_id": project_id},
            {"_id": 1, "version": 1, "undoStack": 1, "redoStack": 1, "pending": 1},
        )

    async def create_head(
        self, doc: Document, *, session: AsyncClientSession | None = None
    ) -> bool:
        """Insert the first head (version 0, claimed); False if another writer was first."""
        try:
            await self._heads.insert_one(doc, session=session)
        except DuplicateKeyError:
            if session is not None:
                raise
            return False
        return True

    async def claim(
        self,
        project_id: str,
        version: int,
        claim: Document,
        *,
        stale_before: datetime,
        updated_at: datetime | None = None,
        session: AsyncClientSession | None = None,
    ) -> bool:
        """Reserve the next version for one writer (the head stays at `version` until commit).

        `updated_at`: the head's time as the writer knows it, when it starts from a head it
        remembers rather than one it just read (then a head written by anything else since,
        a restore too, makes the claim fail).
        """
        condition: Document = {
            "_id": project_id,
            "version": version,
            "$or": [{"pending": None}, {"pending.at": {"$lt": stale_before}}],
        }
        if updated_at is not None:
            condition["updatedAt"] = updated_at
        result = await self._heads.update_one(
            condition, {"$set": {"pending": claim}}, session=session
        )
        return result.modified_count == 1

    async def commit(
        self,
        project_id: str,
        version: int,
        token: str,
        sets: dict[str, Any],
        unsets: list[str],
        *,
        session: AsyncClientSession | None = None,
    ) -> bool:
        update: dict[str, Any] = {"$set": {**sets, "version": version + 1, "pending": None}}
        if unsets:
            update["$unset"] = dict.fromkeys(unsets, "")
        result = await self._heads.update_one(
            {"_id": project_id, "version": version, "pending.token": token},
            update,
            session=session,
        )
        return result.modified_count == 1

    async def release(self, project_id: str, token: str) -> None:
        """Give up a claim after a failed change (best effort; it also expires)."""
        await self._heads.update_one(
            {"_id": project_id, "pending.token": token}, {"$set": {"pending": None}}
        )

    # --- revisions and snapshots ------------------------------------------------------------

    async def put_revision(
        self, revision: Document, *, session: AsyncClientSession | None = None
    ) -> None:
        """Write (or overwrite an unacknowledged leftover of) one revision, under a claim."""
        await _put(self._revisions, revision, session)

    async def put_snapshot(
        self, snapshot: Document, *, session: AsyncClientSession | None = None
    ) -> None:
        await _put(self._snapshots, snapshot, session)

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
        """The committed revision made under an idempotency key (at most one: a key's
        change is claimed only after this search found none at the claimed head)."""
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
        if upto <= after:
            return []
        found = self._revisions.find(
            {"projectId": project_id, "version": {"$gt": after, "$lte": upto}},
            {"_id": 0, "version": 1, "patch": 1, "inverse": 1},
            hint="by_version",
        )
        return await found.sort("version", ASCENDING).limit(upto - after).to_list()

    async def patches_between(self, project_id: str, after: int, upto: int) -> list[Document]:
        """Forward patches of versions after..upto, oldest first (at most K of them)."""
        if upto <= after:
            return []
        found = self._revisions.find(
            {"projectId": project_id, "version": {"$gt": after, "$lte": upto}},
            {"_id": 0, "version": 1, "patch": 1},
            hint="by_version",
        )
        return await found.sort("version", ASCENDING).limit(upto - after).to_list()


# A writer that lost its claim while it stalled, finding the revision it meant to write
# already there (written by the writer that took the claim over).
SUPERSEDED: Final = "Another change to this timeline was saved first; reload and retry."


async def _put(collection: Any, document: Document, session: AsyncClientSession | None) -> None:
    """Insert `document`, or replace the leftover of a crashed writer with the same `_id`.

    Only a leftover of an older claim is replaced: claims of one version are taken over
    only once stale, so each later claim's time (`createdAt`, the claim's `at`) is later,
    and a writer that stalled past its claim's grace can never overwrite the revision of
    the writer that took over (and perhaps committed): it gets a Conflict instead.

    Outside a transaction: an insert, and a replace only when the `_id` is taken (rare: a
    leftover above the head). The embedded engine makes an inserting upsert scan the
    collection (growing with the number of revisions; docs/decisions.md, "Performance");
    an insert and a replace by `_id` read one key. In a transaction the upsert stays: a
    duplicate key error there would abort the whole transaction.
    """
    if session is not None:
        await collection.replace_one(
            {"_id": document["_id"]}, document, upsert=True, session=session
        )
        return
    try:
        await collection.insert_one(document)
    except DuplicateKeyError:
        older = {
            "_id": document["_id"],
            "$or": [
                {"createdAt": {"$lt": document["createdAt"]}},
                {"createdAt": {"$exists": False}},
            ],
        }
        replaced = await collection.replace_one(older, document)
        if replaced.matched_count == 0:
            raise Conflict(SUPERSEDED) from None
