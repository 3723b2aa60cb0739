"""Every query on `editing_sessions`.

The project names of the recent list come from the projects service: this domain never
reads `projects` itself.

A session's `_id` is `<userId>:<projectId>`: one session per user and project is
guaranteed by `_id` alone (project ids never contain `:`, so the pair is unambiguous),
and an upsert by `_id` can never create two. No unique compound index: on the embedded
engine it would cost a collection scan per insert (docs/decisions.md). Every query is by
`_id` or names its catalogue index, with a projection and a limit.
"""

from __future__ import annotations

from typing import Any

from pymongo import DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from snipix.db.client import Database, Document
from snipix.sessions.schemas import RecentCursor

SESSIONS = "editing_sessions"
RECENT_INDEX = "user_recent_id"

SESSION_FIELDS = {
    "_id": 1,
    "userId": 1,
    "projectId": 1,
    "playheadSec": 1,
    "zoom": 1,
    "selectedClipIds": 1,
    "panel": 1,
    "lastOpenedAt": 1,
    "updatedAt": 1,
}
_RECENT_FIELDS = {"_id": 1, "projectId": 1, "lastOpenedAt": 1, "playheadSec": 1}


def session_id(user_id: str, project_id: str) -> str:
    return f"{user_id}:{project_id}"


class SessionRepository:
    def __init__(self, db: Database) -> None:
        self._sessions = db[SESSIONS]

    async def get(self, user_id: str, project_id: str) -> Document | None:
        return await self._sessions.find_one(
            {"_id": session_id(user_id, project_id)}, SESSION_FIELDS
        )

    async def upsert(self, user_id: str, project_id: str, fields: dict[str, Any]) -> Document:
        """Create or replace the user's session of a project; the stored document."""
        sid = session_id(user_id, project_id)
        update = {"$set": {"userId": user_id, "projectId": project_id, **fields}}
        try:
            return await self._upsert(sid, update)
        except DuplicateKeyError:
            # Two first saves at once: the one that lost the insert to the `_id` applies as
            # an update (MongoDB retries this itself; not every engine does).
            return await self._upsert(sid, update)

    async def _upsert(self, sid: str, update: dict[str, Any]) -> Document:
        doc = await self._sessions.find_one_and_update(
            {"_id": sid},
            update,
            projection=SESSION_FIELDS,
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert doc is not None  # an upsert returning the document after it always has one
        return doc

    async def recent(
        self, user_id: str, *, limit: int, after: RecentCursor | None
    ) -> list[Document]:
        """The user's sessions, newest `lastOpenedAt` first (ties by `_id`), after a cursor."""
        query: dict[str, Any] = {"userId": user_id}
        if after is not None:
            last_id = session_id(user_id, after.p)
            query["$or"] = [
                {"lastOpenedAt": {"$lt": after.o}},
                {"lastOpenedAt": after.o, "_id": {"$lt": last_id}},
            ]
        found = self._sessions.find(query, _RECENT_FIELDS, hint=RECENT_INDEX)
        order = [("lastOpenedAt", DESCENDING), ("_id", DESCENDING)]
        return await found.sort(order).limit(limit).to_list()
