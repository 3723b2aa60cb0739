"""`/projects` as the original web app calls it, over `ProjectService`.

A project in the original shape: `_id`, `name`, `description`, `user_id`, `thumbnail`,
`video_path`, `trimmed_video_path`, `duration`, `trimmed_duration` (the project's `media`:
`thumbnail`, `source`, `trimmedSource`, `durationSec`, `trimmedDurationSec`), `status`
(`active`, `processing` or `archived`), `tags`, `is_deleted`, `deleted_at`, `created_at`,
`updated_at`, and `createdAt`/`updatedAt` (the web app reads those), plus `version`.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends
from pydantic import Field

from snipix.api.envelope import failure_responses, success
from snipix.api.identity import ActorDep
from snipix.api.query_guard import reject_unsafe_query
from snipix.compat.common import OriginalRequest, checked, iso, with_one_retry
from snipix.projects.endpoints import ProjectId
from snipix.projects.endpoints import ServiceDep as ProjectServiceDep
from snipix.projects.schemas import (
    MAX_DESCRIPTION,
    ListCursor,
    Media,
    Project,
    ProjectCreate,
    ProjectStatus,
    ProjectUpdate,
    SortField,
)
from snipix.projects.service import ListQuery
from snipix.wire.pages import MAX_LIMIT, decode_cursor

# The web app lists every project on one page; past this many (the most recently updated
# first) the list is cut, and the message says so. Five pages of the service's largest.
MAX_LISTED: Final = 5 * MAX_LIMIT

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


def _original_names(loc: list[str]) -> list[str]:
    """A media validation error's location in the original field names."""
    return [_ORIGINAL_NAMES.get(part, part) for part in loc]


# Bounded like the project fields they map to: refused when the body is read.
OriginalName = Annotated[str, Field(max_length=200)]
OriginalDescription = Annotated[str, Field(max_length=MAX_DESCRIPTION)]
OriginalLocation = Annotated[str, Field(max_length=2_048)]


class OriginalProjectCreate(OriginalRequest):
    name: OriginalName
    description: OriginalDescription | None = None


class OriginalProjectUpdate(OriginalRequest):
    """Only the fields sent (and not null) change; `""` clears a path or the thumbnail."""

    name: OriginalName | None = None
    description: OriginalDescription | None = None
    thumbnail: OriginalLocation | None = None
    duration: float | None = None
    video_path: OriginalLocation | None = None
    trimmed_video_path: OriginalLocation | None = None
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


def project_update(current: Project, body: OriginalProjectUpdate) -> ProjectUpdate | None:
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
        changes["media"] = checked(Media, media, where="body", rename=_original_names)
    if not changes:
        return None
    return checked(ProjectUpdate, changes, where="body")


router = APIRouter(
    prefix="/projects",
    tags=["original web app"],
    dependencies=[Depends(reject_unsafe_query)],
    responses=failure_responses({401: "No or invalid identity."}),
)
_NOT_FOUND = failure_responses({404: "No such project for this user."})
_CHANGE = failure_responses(
    {
        404: "No such project for this user.",
        409: "The project is being purged.",
        412: "Other changes won the race twice in a row; reload and retry.",
    }
)


@router.get("")
@router.get("/", include_in_schema=False)
async def list_projects(actor: ActorDep, service: ProjectServiceDep) -> dict[str, Any]:
    """The caller's projects, most recently updated first (at most 1,000)."""
    projects: list[dict[str, Any]] = []
    cursor: ListCursor | None = None
    while len(projects) < MAX_LISTED:
        page = await service.list_projects(
            actor, ListQuery(sort=SortField.UPDATED_AT, limit=MAX_LIMIT, cursor=cursor)
        )
        projects += [project_document(project) for project in page.items]
        if page.next_cursor is None:
            return success(projects, f"Found {len(projects)} projects")
        cursor = decode_cursor(page.next_cursor, ListCursor)
    return success(
        projects[:MAX_LISTED],
        f"Showing the {MAX_LISTED} most recently updated projects; there are more",
    )


@router.post("")
@router.post("/", include_in_schema=False)
async def create_project(
    body: OriginalProjectCreate, actor: ActorDep, service: ProjectServiceDep
) -> dict[str, Any]:
    """Create a project (200, as the original backend answered)."""
    data = checked(
        ProjectCreate, {"name": body.name, "description": body.description or ""}, where="body"
    )
    project, _repeat = await service.create(actor, data)
    return success(project_document(project), "Project created successfully")


@router.get("/{project_id}", responses=_NOT_FOUND)
async def get_project(
    project_id: ProjectId, actor: ActorDep, service: ProjectServiceDep
) -> dict[str, Any]:
    """One project; another user's or a deleted one is 404."""
    project = await service.get(actor, project_id)
    return success(project_document(project), "Project found")


@router.put("/{project_id}", responses=_CHANGE)
async def update_project(
    project_id: ProjectId,
    body: OriginalProjectUpdate,
    actor: ActorDep,
    service: ProjectServiceDep,
) -> dict[str, Any]:
    """Change the fields sent, over the current version (a new version)."""

    async def write() -> Project:
        current = await service.get(actor, project_id)
        update = project_update(current, body)
        if update is None:
            return current
        return await service.update(actor, project_id, update, expected=current.version)

    project = await with_one_retry(write)
    return success(project_document(project), "Project updated successfully")


@router.delete("/{project_id}", responses=_CHANGE)
async def delete_project(
    project_id: ProjectId, actor: ActorDep, service: ProjectServiceDep
) -> dict[str, Any]:
    """Soft delete (restorable); deleting a deleted project changes nothing."""
    await service.delete(actor, project_id, expected=None)
    return success(None, "Project deleted successfully")


@router.post("/{project_id}/restore", responses=_CHANGE)
async def restore_project(
    project_id: ProjectId, actor: ActorDep, service: ProjectServiceDep
) -> dict[str, Any]:
    """Undo a soft delete; a live project stays as it is."""
    await service.restore(actor, project_id, expected=None)
    return success(None, "Project restored successfully")
