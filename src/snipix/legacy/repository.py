"""Every query the legacy import and export send (the documents themselves are shaped by
the domains' own code; see `records`).

Like backup, a bulk data tool that reads and writes other domains' collections itself:
it stores a project with everything it owns in batches of hundreds, which no domain's API
does. It finds them through the registry of collections (`snipix.catalogue`: the key and
index by which a user's or a project's documents are found), never by a table of its own
(docs/decisions.md).

Writes are bulk inserts (`snipix.db.bulk`): an upserting replace that inserts costs a
collection scan on the embedded engine, so a document is replaced only when an insert
meets one already stored — the leftover of an interrupted run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Final

from pymongo import ASCENDING

from snipix.accounts.repository import USERS
from snipix.audit.repository import COLLECTION as AUDIT
from snipix.catalogue import BY_NAME
from snipix.db.bulk import OnDuplicate, Write, insert_or_replace
from snipix.db.client import Database, Document
from snipix.projects.repository import PROJECTS
from snipix.timelines.repository import HEADS, REVISIONS, SNAPSHOTS
from snipix.transcripts.repository import BUCKETS, HEADERS

# Ids per `$in` lookup (bounded for the embedded engine, as in backups).
LOOKUP_BATCH: Final = 100
# What must be stored before a project's document: the project is written last, so a
# project whose document exists was imported whole (the completion marker of a re-run).
# Every one is a registered collection (tests/test_catalogue.py).
WRITE_ORDER: Final = (BUCKETS, HEADERS, REVISIONS, SNAPSHOTS, HEADS, AUDIT, PROJECTS)
# Where a stored document stays when an insert meets it: a project stored by another
# writer first is a conflict (returned), an audit entry already there says the same thing.
_KEPT: Final = frozenset({PROJECTS, AUDIT})
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
        writes = [Write(doc["_id"], doc, stored=doc["_id"] in replace) for doc in documents]
        met = await insert_or_replace(
            self._db[collection],
            writes,
            on_duplicate=OnDuplicate.KEEP if collection in _KEPT else OnDuplicate.REPLACE,
            # Another writer's upsert of the same id is met like its insert.
            duplicate_replaces=True,
        )
        return [write.document for write in met] if collection == PROJECTS else []

    async def account(self, email: str) -> Document | None:
        """The account with this (normalised) email. Not hinted, unlike sign-in's lookup:
        a dry run may meet a database whose catalogue was never built (once per run)."""
        return await self._db[USERS].find_one({"email": email}, {"_id": 1})

    # --- export ----------------------------------------------------------------------

    async def projects(self, owner_id: str | None, *, batch: int) -> AsyncIterator[list[Document]]:
        """Every project (deleted ones too), or one owner's, in `_id` order, in batches."""
        query = {} if owner_id is None else BY_NAME[PROJECTS].owner_query(owner_id)
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
        buckets = BY_NAME[BUCKETS]
        found = self._db[BUCKETS].find(
            {str(buckets.project_key): project_id, "generation": generation},
            {"_id": 0, "seq": 1, "segments": 1},
            hint=buckets.project_index,
        )
        async for bucket in found.sort([("start", ASCENDING), ("seq", ASCENDING)]):
            yield bucket


__all__ = ["HEADERS", "HEADS", "REVISIONS", "SNAPSHOTS", "WRITE_ORDER", "LegacyRepository"]
