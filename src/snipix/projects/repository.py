"""Every query on `projects` and `project_versions` (and the purge of what a project owns).

What a project owns in other domains is listed in the registry of collections
(`snipix.catalogue`, which refers to this module's names); the service hands it to
`purge`.

Each query names the catalogue index it is built for (`hint`), is scoped by owner and
`isDeleted` unless it is a recovery query, and has a projection and a limit;
`tests/projects/test_query_plans.py` explains every shape the service sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from snipix.db.client import Database, Document
from snipix.projects.schemas import ListCursor, SortField

PROJECTS = "projects"
VERSIONS = "project_versions"

PROJECT_FIELDS = {
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
    "deletedBy": 1,
    "purgingAt": 1,
    "createdWith": 1,
}
_NAME_FIELDS = {"_id": 1, "name": 1, "userId": 1}
_VERSION_FIELDS = {"_id": 0, "version": 1, "snapshot": 1, "createdAt": 1}
_SORT_INDEX = {SortField.UPDATED_AT: "active_by_updated", SortField.CREATED_AT: "active_by_created"}


def _filters(status: str | None, tag: str | None) -> dict[str, Any]:
    query: dict[str, Any] = {}
    if status is not None:
        query["status"] = status
    if tag is not None:
        query["tags"] = tag
    return query


def _descending(text: str) -> tuple[int, ...]:
    """A sort key that orders strings in reverse (newest ObjectId-like id first)."""
    return tuple(-ord(char) for char in text)


def rank(hits: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Search hits best first, ties broken by id (newest first), so pages are stable."""
    return sorted(hits, key=lambda hit: (-hit[1], _descending(hit[0])))


class ProjectRepository:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._projects = db[PROJECTS]
        self._versions = db[VERSIONS]

    async def insert(self, doc: Document, session: AsyncClientSession | None = None) -> None:
        await self._projects.insert_one(doc, session=session)

    async def get(
        self,
        project_id: str,
        owner_id: str | None,
        *,
        deleted: bool | None = False,
        session: AsyncClientSession | None = None,
    ) -> Document | None:
        """One project by id; `owner_id=None` only for admin and retention paths.

        Owner and deletion are checked here, not in the filter: by `_id` alone the
        embedded engine takes its primary-key path only for a bare `_id` (the two extra
        predicates cost a slower plan; docs/decisions.md, "Performance"), and MongoDB
        plans both the same. The answer is the same document or None either way (a
        missing `isDeleted` matches neither, as in the filter).
        """
        doc = await self._projects.find_one({"_id": project_id}, PROJECT_FIELDS, session=session)
        if doc is None:
            return None
        if owner_id is not None and doc.get("userId") != owner_id:
            return None
        if deleted is not None and doc.get("isDeleted") is not deleted:
            return None
        return doc

    async def list_active(
        self,
        owner_id: str,
        *,
        sort: SortField,
        status: str | None,
        tag: str | None,
        limit: int,
        after: ListCursor | None,
    ) -> list[Document]:
        return await self._page(
            {"userId": owner_id}, _SORT_INDEX[sort], sort, status, tag, limit, after
        )

    async def search(
        self,
        owner_id: str,
        text: str,
        *,
        status: str | None,
        tag: str | None,
        limit: int,
    ) -> list[tuple[str, float]]:
        """(id, relevance) of the owner's matching projects, best first, at most `limit`.

        Two steps rather than one ranked `find` with the full projection: the embedded
        engine returns only `_id` and the score when a projection names fields beside
        `$meta`, and ignores the score in a sort with a tie-breaker. Ids and scores work
        the same everywhere; ties are broken here, by id, so pages are stable.
        """
        return await self._ranked({"userId": owner_id}, text, status, tag, limit)

    async def list_among(
        self,
        project_ids: list[str],
        *,
        sort: SortField,
        status: str | None,
        tag: str | None,
        limit: int,
        after: ListCursor | None,
    ) -> list[Document]:
        """The active projects among `project_ids` (those shared with a user), in the list's
        order: selected by the `_id` index, at most `len(project_ids)` examined."""
        return await self._page(
            {"_id": {"$in": project_ids}}, "_id_", sort, status, tag, limit, after
        )

    async def search_among(
        self,
        project_ids: list[str],
        text: str,
        *,
        status: str | None,
        tag: str | None,
        limit: int,
    ) -> list[tuple[str, float]]:
        """(id, relevance) of the matching active projects among `project_ids`, best first
        (the same two-step search as `search`, for the projects shared with a user)."""
        return await self._ranked({"_id": {"$in": project_ids}}, text, status, tag, limit)

    async def _page(
        self,
        scope: dict[str, Any],
        hint: str,
        sort: SortField,
        status: str | None,
        tag: str | None,
        limit: int,
        after: ListCursor | None,
    ) -> list[Document]:
        """One list page of the active projects in `scope` (an owner, or ids shared with a
        user), newest `sort` first, after the cursor."""
        key = sort.value
        query: dict[str, Any] = {**scope, "isDeleted": False, **_filters(status, tag)}
        if after is not None:
            query["$or"] = [{key: {"$lt": after.t}}, {key: after.t, "_id": {"$lt": after.id}}]
        found = self._projects.find(query, PROJECT_FIELDS, hint=hint)
        return await found.sort([(key, DESCENDING), ("_id", DESCENDING)]).limit(limit).to_list()

    async def _ranked(
        self,
        scope: dict[str, Any],
        text: str,
        status: str | None,
        tag: str | None,
        limit: int,
    ) -> list[tuple[str, float]]:
        """(id, relevance) of the active projects in `scope` matching `text`, best first."""
        # `$text` always uses the text index (MongoDB refuses a hint with it).
        query: dict[str, Any] = {
            "$text": {"$search": text},
            **scope,
            "isDeleted": False,
            **_filters(status, tag),
        }
        found = self._projects.find(query, {"_id": 1, "score": {"$meta": "textScore"}})
        ranked = await found.sort([("score", {"$meta": "textScore"})]).limit(limit).to_list()
        return rank([(str(doc["_id"]), float(doc["score"])) for doc in ranked])

    async def get_many(self, owner_id: str | None, project_ids: list[str]) -> list[Document]:
        """The active projects among `project_ids` (the owner's only, unless `owner_id` is
        None: ids the caller was found to reach), in the order given."""
        query: dict[str, Any] = {"_id": {"$in": project_ids}, "isDeleted": False}
        if owner_id is not None:
            query["userId"] = owner_id
        found = self._projects.find(query, PROJECT_FIELDS)
        by_id = {doc["_id"]: doc async for doc in found.limit(len(project_ids))}
        return [by_id[project_id] for project_id in project_ids if project_id in by_id]

    async def live_names(self, project_ids: list[str]) -> list[Document]:
        """`_id`, `name` and owner (`userId`) of the live (not soft-deleted) projects among
        `project_ids`: the recent-sessions list shows them (the service keeps those the
        caller may open), and only projects' own code reads `projects`."""
        if not project_ids:
            return []
        found = self._projects.find({"_id": {"$in": project_ids}, "isDeleted": False}, _NAME_FIELDS)
        return await found.limit(len(project_ids)).to_list()

    async def update(
        self,
        project_id: str,
        version: int,
        changes: dict[str, Any],
        *,
        unset: tuple[str, ...] = (),
        session: AsyncClientSession | None = None,
    ) -> Document | None:
        """Apply `changes` if the project is still at `version`; the new document, or None."""
        update: dict[str, Any] = {"$set": {**changes, "version": version + 1}}
        if unset:
            update["$unset"] = dict.fromkeys(unset, "")
        # A project claimed by a purge takes no more changes (see ProjectService._purge).
        return await self._projects.find_one_and_update(
            {"_id": project_id, "version": version, "purgingAt": {"$exists": False}},
            update,
            projection=PROJECT_FIELDS,
            return_document=ReturnDocument.AFTER,
            session=session,
        )

    async def save_version(
        self, snapshot: Document, session: AsyncClientSession | None = None
    ) -> None:
        """Keep one superseded state. Its `_id` is `<project>:<version>`, so a retried
        write of the same state (ordered writes without a transaction) is a no-op."""
        try:
            await self._versions.insert_one(snapshot, session=session)
        except DuplicateKeyError:
            if session is not None:
                raise

    async def versions(self, project_id: str, *, limit: int, before: int | None) -> list[Document]:
        query: dict[str, Any] = {"projectId": project_id}
        if before is not None:
            query["version"] = {"$lt": before}
        found = self._versions.find(query, _VERSION_FIELDS, hint="by_version")
        return await found.sort("version", DESCENDING).limit(limit).to_list()

    async def version(self, project_id: str, version: int) -> Document | None:
        return await self._versions.find_one(
            {"projectId": project_id, "version": version}, _VERSION_FIELDS, hint="by_version"
        )

    async def list_deleted(self, *, limit: int, after: ListCursor | None) -> list[Document]:
        """Recovery query across owners (admin): newest deletion first."""
        query: dict[str, Any] = {"isDeleted": True}
        if after is not None:
            query["$or"] = [
                {"deletedAt": {"$lt": after.t}},
                {"deletedAt": after.t, "_id": {"$lt": after.id}},
            ]
        found = self._projects.find(query, PROJECT_FIELDS, hint="deleted_at")
        order = [("deletedAt", DESCENDING), ("_id", DESCENDING)]
        return await found.sort(order).limit(limit).to_list()

    async def expired(self, cutoff: datetime, *, limit: int) -> list[Document]:
        """Soft-deleted before `cutoff`, oldest first: what the retention sweep purges."""
        found = self._projects.find(
            {"isDeleted": True, "deletedAt": {"$lt": cutoff}},
            {"_id": 1, "userId": 1, "name": 1, "deletedAt": 1, "version": 1},
            hint="deleted_at",
        )
        return await found.sort([("deletedAt", ASCENDING)]).limit(limit).to_list()

    async def claim_for_purge(self, project_id: str, now: datetime) -> Document | None:
        """Mark a still-deleted project as being purged; None if it is not deleted (any more)."""
        return await self._projects.find_one_and_update(
            {"_id": project_id, "isDeleted": True},
            {"$set": {"purgingAt": now}},
            projection=PROJECT_FIELDS,
            return_document=ReturnDocument.AFTER,
        )

    async def purge(self, project_id: str, owned: Sequence[tuple[str, str]]) -> dict[str, int]:
        """Delete a project and everything it owns (`owned`: each collection with the index
        of its `projectId` delete, in order); safe to repeat after an interruption.

        The project document itself goes last, so a purge interrupted half-way leaves a
        soft-deleted project that the next sweep finishes.
        """
        deleted: dict[str, int] = {}
        for collection, index in owned:
            result = await self._db[collection].delete_many({"projectId": project_id}, hint=index)
            deleted[collection] = result.deleted_count
        result = await self._projects.delete_one({"_id": project_id, "isDeleted": True})
        deleted[PROJECTS] = result.deleted_count
        return deleted
