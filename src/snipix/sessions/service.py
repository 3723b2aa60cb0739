"""The session rules: only the owner of a live project has a session in it, and the
recent list shows only the caller's live projects.

Sessions are UI state (where the playhead was, what was selected), saved often and
never worth a conflict: a PUT replaces the caller's session, last write wins, with no
history, no version and no `If-Match`. Two tabs of the same user simply take turns.
"""

from __future__ import annotations

from snipix.auth.actor import Actor
from snipix.clock import utc_now_ms
from snipix.db.client import Document
from snipix.projects.members import Role
from snipix.projects.service import ProjectService
from snipix.sessions.repository import SessionRepository
from snipix.sessions.schemas import (
    EditingSession,
    RecentCursor,
    RecentProject,
    SessionUpdate,
)
from snipix.wire.pages import Page, encode_cursor

# Batches of sessions one recent page may read while skipping sessions of deleted
# projects; past that the page is returned short, with a cursor to go on from.
MAX_RECENT_BATCHES = 3


def _position(doc: Document) -> RecentCursor:
    return RecentCursor(o=doc["lastOpenedAt"], p=doc["projectId"])


class SessionService:
    def __init__(self, sessions: SessionRepository, projects: ProjectService) -> None:
        self._sessions = sessions
        self._projects = projects

    async def get(self, actor: Actor, project_id: str) -> EditingSession:
        """The caller's session; the defaults (never opened) if there is none yet.

        404 for another user's or a deleted project. Reading does not count as opening.
        """
        await self._projects.get(actor, project_id)
        doc = await self._sessions.get(actor.user_id, project_id)
        if doc is None:
            return EditingSession.default(project_id)
        return EditingSession.from_document(doc)

    async def save(self, actor: Actor, project_id: str, data: SessionUpdate) -> EditingSession:
        """Replace the caller's session (last write wins) and mark the project opened now.

        A purge racing this save can leave a session of a project that no longer exists:
        it is invisible (no route finds a project for it) and holds no content.
        """
        await self._projects.get(actor, project_id, need=Role.EDITOR)
        now = utc_now_ms()
        doc = await self._sessions.upsert(
            actor.user_id,
            project_id,
            {
                "playheadSec": data.playhead_sec,
                "zoom": data.zoom,
                "selectedClipIds": data.selected_clip_ids,
                "panel": data.panel,
                "lastOpenedAt": now,
                "updatedAt": now,
            },
        )
        return EditingSession.from_document(doc)

    async def recent(
        self, actor: Actor, *, limit: int, cursor: RecentCursor | None
    ) -> Page[RecentProject]:
        """The caller's projects, most recently opened first; soft-deleted ones left out.

        Sessions are read in keyset order; each batch's projects are looked up with one
        `$in` on `_id` (owner and `isDeleted: false`), and sessions of deleted projects are
        skipped. The cursor is the last session the page consumed (shown or skipped), so no
        project is shown twice or missed. A page is filled from up to MAX_RECENT_BATCHES
        batches; only when more sessions than that belong to deleted projects is it shorter
        than `limit` (never a sign of the end: only `nextCursor: null` is).
        """
        items: list[RecentProject] = []
        after = cursor
        more = True  # unless a batch shows the user has no sessions past it
        for _ in range(MAX_RECENT_BATCHES):
            batch = await self._sessions.recent(actor.user_id, limit=limit + 1, after=after)
            names = await self._projects.live_names(actor, [doc["projectId"] for doc in batch])
            unread = len(batch)
            for doc in batch:
                unread -= 1
                after = _position(doc)
                name = names.get(doc["projectId"])
                if name is not None:
                    items.append(
                        RecentProject(
                            project_id=doc["projectId"],
                            name=name,
                            last_opened_at=doc["lastOpenedAt"],
                            playhead_sec=doc.get("playheadSec", 0.0),
                        )
                    )
                    if len(items) == limit:
                        break
            last_batch = len(batch) <= limit
            if len(items) == limit:
                more = unread > 0 or not last_batch
                break
            if last_batch:
                more = False
                break
        next_cursor = encode_cursor(after) if more and after is not None else None
        return Page[RecentProject](items=items, next_cursor=next_cursor)
