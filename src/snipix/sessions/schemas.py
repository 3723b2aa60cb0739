"""Editing sessions on the wire. The project and the user come from the path and the
identity, the times from the server: none of them is read from a body."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints

from snipix.projects.schemas import PROJECT_ID_PATTERN
from snipix.timelines.schemas import MAX_SECONDS, Id
from snipix.wire.models import Instant, WireModel
from snipix.wire.pages import CursorModel

MAX_SELECTION = 500
MAX_ZOOM = 10_000.0
DEFAULT_ZOOM = 1.0

# A short, enum-like name the editor gives its panels ("timeline", "effects", ...).
Panel = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


def _unique_ids(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


Selection = Annotated[
    list[Id],
    Field(max_length=MAX_SELECTION, description="Selected clip ids (duplicates dropped)."),
    AfterValidator(_unique_ids),
]


class SessionUpdate(WireModel):
    """The whole session (PUT replaces it): a field left out takes its default."""

    playhead_sec: float = Field(0.0, ge=0, le=MAX_SECONDS, allow_inf_nan=False)
    zoom: float = Field(DEFAULT_ZOOM, gt=0, le=MAX_ZOOM, allow_inf_nan=False)
    selected_clip_ids: Selection = Field(default_factory=list)
    panel: Panel | None = None


class EditingSession(WireModel):
    """The caller's UI state in one project; `lastOpenedAt` is null if never opened."""

    project_id: str
    playhead_sec: float
    zoom: float
    selected_clip_ids: list[str]
    panel: str | None
    last_opened_at: Instant | None
    updated_at: Instant | None

    @classmethod
    def default(cls, project_id: str) -> EditingSession:
        return cls(
            project_id=project_id,
            playhead_sec=0.0,
            zoom=DEFAULT_ZOOM,
            selected_clip_ids=[],
            panel=None,
            last_opened_at=None,
            updated_at=None,
        )

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> EditingSession:
        return cls(
            project_id=doc["projectId"],
            playhead_sec=doc.get("playheadSec", 0.0),
            zoom=doc.get("zoom", DEFAULT_ZOOM),
            selected_clip_ids=doc.get("selectedClipIds", []),
            panel=doc.get("panel"),
            last_opened_at=doc.get("lastOpenedAt"),
            updated_at=doc.get("updatedAt"),
        )


class RecentProject(WireModel):
    """One recently opened project of the caller."""

    project_id: str
    name: str
    last_opened_at: Instant
    playhead_sec: float


class RecentCursor(CursorModel):
    # The session's `_id` is `<user>:<project>`; the cursor carries only the project part,
    # so it never names a user and cannot point into another user's sessions.
    o: datetime
    p: Annotated[str, StringConstraints(pattern=PROJECT_ID_PATTERN)]
