"""Every query the legacy import and export send (the documents themselves are shaped by
the domains' own code; see `records`).

Writes are bulk inserts: an upserting replace that inserts costs a collection scan on the
embedded engine (see `snipix.backup.archive._write`), so a document is replaced only when an
insert meets one already stored — the leftover of an interrupted run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Final

from pymongo import ASCENDING, InsertOne, ReplaceOne
from pymongo.errors import BulkWriteError

from snipix.accounts.repository import USERS
from snipix.audit.repository import COLLECTION as AUDIT
from snipix.db.client import Database, Document
from snipix.projects.repository import PROJECTS
from snipix.timelines.repository import HEADS, REVISIONS, SNAPSHOTS
from snipix.transcripts.repository import BUCKETS, HEADERS

# Ids per `$in` lookup (bounded for the embedded engine, as in backups).
LOOKUP_BATCH: Final = 100
_DUPLICATE_KEY: Final = 11000
# What must be stored before a project's document: the project is written last, so a
# project whose document exists was imported whole (the completion marker of a re-run).
WRITE_ORDER: Final = (BUCKETS, HEADERS, REVISIONS, SNAPSHOTS, HEADS, AUDIT, PROJECTS)
# What decides whether a project was imported, and from what.
_IMPORTED_FIELDS: Final = {"_id": 1, "userId": 1, "legacyImport.checksum": 1}
_EXPORT_FIELDS: Final = {
    "_id": 1,
    "userId": 1,
    "name": 1,
    "description": 1,
    "status": 1,
    "tags": 1,
    "media": 1,
    "createdAt": 1,
    "updatedAt": 1,
    "version": 1,
    "isDeleted": 1,
    "deletedAt": 1,
    "legacyImport": 1,
}


class LegacyRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def imported(self, project_ids: Sequence[str]) -> dict[str, Document]:
        """The stored projects among these ids: owner and import checksum."""
        found: dict[str, Document] = {}
        for start in range(0, len(project_ids), LOOKUP_BATCH):
            batch = list(project_ids[start : start + LOOKUP_BATCH])
            cursor = self._db[PROJECTS].find({"_id": {"$in": batch}}, _IMPORTED_FIELDS)
            async for doc in cursor.limit(len(batch)):
                found[doc["_id"]] = doc
        return found

    async def write(
        self, collection: str, documents: Sequence[Document], *, replace: set[str]
    ) -> list[Document]:
        """Insert (or, for ids in `replace`, upsert) the documents, and replace any that
        an insert finds already stored. For `projects` nothing is replaced: the documents
        another writer stored first are returned instead."""
        operations: list[InsertOne[Document] | ReplaceOne[Document]] = [
            ReplaceOne({"_id": doc["_id"]}, doc, upsert=True)
            if doc["_id"] in replace
            else InsertOne(doc)
            for doc in documents
        ]
        if not operations:
            return []
        target = self._db[collection]
        try:
            await target.bulk_write(operations, ordered=False)
        except BulkWriteError as error:
            errors = error.details.get("writeErrors") or []
            stored = [documents[e["index"]] for e in errors if e.get("code") == _DUPLICATE_KEY]
            if len(stored) != len(errors) or error.details.get("writeConcernErrors"):
                raise
            if collection == PROJECTS:
                return stored
            if collection != AUDIT:  # an audit entry already there says the same thing
                await target.bulk_write(
                    [ReplaceOne({"_id": doc["_id"]}, doc, upsert=True) for doc in stored],
                    ordered=False,
                )
        return []

    async def account(self, email: str) -> Document | None:
        """The account with this (normalised) email. Not hinted, unlike sign-in's lookup:
        a dry run may meet a database whose catalogue was never built (once per run)."""
        return await self._db[USERS].find_one({"email": email}, {"_id": 1})

    # --- export ----------------------------------------------------------------------

    async def projects(self, owner_id: str | None, *, batch: int) -> AsyncIterator[list[Document]]:
        """Every project (deleted ones too), or one owner's, in `_id` order, in batches."""
        query: dict[str, Any] = {} if owner_id is None else {"userId": owner_id}
        cursor = self._db[PROJECTS].find(query, _EXPORT_FIELDS, batch_size=batch)
        page: list[Document] = []
        async for doc in cursor.sort("_id", ASCENDING):
            page.append(doc)
            if len(page) >= batch:
                yield page
                page = []
        if page:
            yield page

    async def by_ids(
        self, collection: str, ids: Sequence[str], projection: dict[str, int] | None = None
    ) -> dict[str, Document]:
        found: dict[str, Document] = {}
        for start in range(0, len(ids), LOOKUP_BATCH):
            batch = list(ids[start : start + LOOKUP_BATCH])
            async for doc in self._db[collection].find({"_id": {"$in": batch}}, projection):
                found[doc["_id"]] = doc
        return found

    async def buckets(self, project_id: str, generation: str) -> AsyncIterator[Document]:
        """One generation's buckets in order (their start times never decrease)."""
        found = self._db[BUCKETS].find(
            {"projectId": project_id, "generation": generation},
            {"_id": 0, "seq": 1, "segments": 1},
            hint="project_generation_start",
        )
        async for bucket in found.sort([("start", ASCENDING), ("seq", ASCENDING)]):
            yield bucket


__all__ = ["HEADERS", "HEADS", "REVISIONS", "SNAPSHOTS", "WRITE_ORDER", "LegacyRepository"]
