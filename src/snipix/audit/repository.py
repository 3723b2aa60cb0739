"""Every query on `audit_log`. Entries are append-only; a TTL index expires them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession

from snipix.audit.schemas import AuditCursor
from snipix.auth.actor import Actor
from snipix.db.client import Database, Document

COLLECTION = "audit_log"
_PROJECTION = {
    "_id": 1,
    "at": 1,
    "userId": 1,
    "ownerId": 1,
    "action": 1,
    "entity": 1,
    "entityId": 1,
    "version": 1,
    "requestId": 1,
    "summary": 1,
}
_NEWEST_FIRST = [("at", DESCENDING), ("_id", DESCENDING)]


@dataclass(frozen=True, slots=True)
class AuditFilter:
    user_id: str | None = None
    entity_id: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def audit_document(
    actor: Actor,
    *,
    at: datetime,
    action: str,
    entity: str,
    entity_id: str,
    owner_id: str | None,
    version: int | None,
    summary: dict[str, Any],
) -> Document:
    return {
        "_id": str(ObjectId()),
        "at": at,
        "userId": actor.user_id,
        "ownerId": owner_id,
        "action": action,
        "entity": entity,
        "entityId": entity_id,
        "version": version,
        "requestId": actor.request_id,
        "summary": summary,
    }


def _after(cursor: AuditCursor | None) -> dict[str, Any]:
    if cursor is None:
        return {}
    return {"$or": [{"at": {"$lt": cursor.at}}, {"at": cursor.at, "_id": {"$lt": cursor.id}}]}


class AuditRepository:
    def __init__(self, db: Database) -> None:
        self._entries = db[COLLECTION]

    async def record(self, entry: Document, session: AsyncClientSession | None = None) -> None:
        await self._entries.insert_one(entry, session=session)

    async def for_entity(
        self, entity: str, entity_id: str, *, limit: int, cursor: AuditCursor | None
    ) -> list[Document]:
        query = {"entityId": entity_id, "entity": entity, **_after(cursor)}
        found = self._entries.find(query, _PROJECTION, hint="entity_at_id")
        return await found.sort(_NEWEST_FIRST).limit(limit).to_list()

    async def search(
        self, where: AuditFilter, *, limit: int, cursor: AuditCursor | None
    ) -> list[Document]:
        query: dict[str, Any] = {}
        if where.user_id is not None:
            query["userId"] = where.user_id
        if where.entity_id is not None:
            query["entityId"] = where.entity_id
        if where.action is not None:
            query["action"] = where.action
        window: dict[str, datetime] = {}
        if where.since is not None:
            window["$gte"] = where.since
        if where.until is not None:
            window["$lt"] = where.until
        if window:
            query["at"] = window
        query.update(_after(cursor))
        # The most selective index the filter allows; all are ordered by `at` for the sort.
        if where.entity_id is not None:
            hint = "entity_at_id"
        elif where.user_id is not None:
            hint = "user_at_id"
        elif where.action is not None:
            hint = "action_at_id"
        else:
            hint = "at_id"
        found = self._entries.find(query, _PROJECTION, hint=hint)
        return await found.sort(_NEWEST_FIRST).limit(limit).to_list()
