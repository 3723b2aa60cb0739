"""The original web app's project shape and its mapping to and from Snipix's models.

The routes that speak it are `snipix.api.compat.projects`; the legacy import and export read
and write the same shape (`snipix.legacy`).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import Field

from snipix.compat.common import CompatRequest, checked, iso
from snipix.projects.schemas import (
    MAX_DESCRIPTION,
    Media,
    Project,
    ProjectStatus,
    ProjectUpdate,
)

# The original backend's statuses were active | processing | archived.
ORIGINAL_STATUS: Final = {
    ProjectStatus.DRAFT: "active",
    ProjectStatus.EDITING: "active",
    ProjectStatus.READY: "active",
    ProjectStatus.RENDERING: "processing",
    ProjectStatus.ARCHIVED: "archived",
}
# Original field -> the field of the project's `media` it lives in.
MEDIA_FIELDS: Final = {
    "thumbnail": "thumbnail",
    "video_path": "source",
    "trimmed_video_path": "trimmed_source",
    "duration": "duration_sec",
    "trimmed_duration": "trimmed_duration_sec",
}
_ORIGINAL_NAMES: Final = {target: source for source, target in MEDIA_FIELDS.items()}


def compat_media_names(loc: list[str]) -> list[str]:
    """A media validation error's location in the original field names.

    Public: the legacy import reports a bad media field in the original names too."""
    return [_ORIGINAL_NAMES.get(part, part) for part in loc]


# Bounded like the project fields they map to: refused when the body is read.
CompatName = Annotated[str, Field(max_length=200)]
CompatDescription = Annotated[str, Field(max_length=MAX_DESCRIPTION)]
CompatLocation = Annotated[str, Field(max_length=2_048)]


class CompatProjectCreate(CompatRequest):
    name: CompatName
    description: CompatDescription | None = None


class CompatProjectUpdate(CompatRequest):
    """Only the fields sent (and not null) change; `""` clears a path or the thumbnail."""

    name: CompatName | None = None
    description: CompatDescription | None = None
    thumbnail: CompatLocation | None = None
    duration: float | None = None
    video_path: CompatLocation | None = None
    trimmed_video_path: CompatLocation | None = None
    trimmed_duration: float | None = None


def project_document(project: Project) -> dict[str, Any]:
    """The project in the original shape."""
    media = project.media
    created, updated = iso(project.created_at), iso(project.updated_at)
    return {
        "_id": project.id,
        "name": project.name,
        "description": project.description,
        "user_id": project.user_id,
        "thumbnail": media.thumbnail if media is not None else None,
        "video_path": media.source if media is not None else None,
        "trimmed_video_path": media.trimmed_source if media is not None else None,
        "duration": media.duration_sec if media is not None else None,
        "trimmed_duration": media.trimmed_duration_sec if media is not None else None,
        "status": ORIGINAL_STATUS[project.status],
        "tags": list(project.tags),
        "is_deleted": project.is_deleted,
        "deleted_at": iso(project.deleted_at),
        "created_at": created,
        "updated_at": updated,
        "createdAt": created,
        "updatedAt": updated,
        "version": project.version,
    }


def project_update(current: Project, body: CompatProjectUpdate) -> ProjectUpdate | None:
    """The `/api/v1` update for an original PUT on `current`; None when it changes nothing.

    The media fields are merged into the current `media` (which is replaced whole), so the
    update must apply to `current`'s version.
    """
    changes: dict[str, Any] = {}
    if body.name is not None:
        changes["name"] = body.name
    if body.description is not None:
        changes["description"] = body.description
    sent = {
        target: getattr(body, source)
        for source, target in MEDIA_FIELDS.items()
        if getattr(body, source) is not None
    }
    if sent:
        media = current.media.model_dump(by_alias=False) if current.media is not None else {}
        media.update({name: (None if value == "" else value) for name, value in sent.items()})
        changes["media"] = checked(Media, media, where="body", rename=compat_media_names)
    if not changes:
        return None
    return checked(ProjectUpdate, changes, where="body")
