"""`/projects` as the original web app calls it, over `ProjectService`.

A project in the original shape: `_id`, `name`, `description`, `user_id`, `thumbnail`,
`video_path`, `trimmed_video_path`, `duration`, `trimmed_duration` (the project's `media`:
`thumbnail`, `source`, `trimmedSource`, `durationSec`, `trimmedDurationSec`), `status`
(`active`, `processing` or `archived`), `tags`, `is_deleted`, `deleted_at`, `created_at`,
`updated_at`, and `createdAt`/`updatedAt` (the web app reads those), plus `version`.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Depends

from snipix.api.answers import errors
from snipix.api.compat.common import with_one_retry
from snipix.api.envelope import success
from snipix.api.identity import ActorDep
from snipix.api.parameters import ProjectId
from snipix.api.query_guard import reject_unsafe_query
from snipix.api.routes.projects import ServiceDep as ProjectServiceDep
from snipix.compat.common import checked
from snipix.compat.projects import (
    CompatProjectCreate,
    CompatProjectUpdate,
    project_document,
    project_update,
)
from snipix.projects.schemas import (
    ListCursor,
    Project,
    ProjectCreate,
    RoleFilter,
    SortField,
)
from snipix.projects.service import ListQuery
from snipix.wire.pages import MAX_LIMIT, decode_cursor

# The web app lists every project on one page; past this many (the most recently updated
# first) the list is cut, and the message says so. Five pages of the service's largest.
MAX_LISTED: Final = 5 * MAX_LIMIT

router = APIRouter(
    prefix="/projects",
    tags=["original web app"],
    dependencies=[Depends(reject_unsafe_query)],
    responses=errors(401, compat=True),
)
_NOT_FOUND = errors(404, compat=True)
_CHANGE = errors(404, 412, say={409: "The project is being purged."}, compat=True)


@router.get("")
@router.get("/", include_in_schema=False)
async def list_projects(actor: ActorDep, service: ProjectServiceDep) -> dict[str, Any]:
    """The caller's projects, most recently updated first (at most 1,000)."""
    projects: list[dict[str, Any]] = []
    cursor: ListCursor | None = None
    while len(projects) < MAX_LISTED:
        page = await service.list_projects(
            # The web app knows no sharing: its list is the caller's own projects.
            actor,
            ListQuery(
                sort=SortField.UPDATED_AT, limit=MAX_LIMIT, cursor=cursor, role=RoleFilter.OWNER
            ),
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
    body: CompatProjectCreate, actor: ActorDep, service: ProjectServiceDep
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
    body: CompatProjectUpdate,
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
