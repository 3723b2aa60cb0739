"""HTTP for projects (`/api/v1/projects`) and their admin routes: HTTP only, rules live in
`ProjectService`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from snipix.api.answers import errors
from snipix.api.etags import IfMatchHeader, set_etag
from snipix.api.idempotency import REPLAYED_HEADER, IdempotencyKeyHeader
from snipix.api.identity import ActorDep, AdminDep
from snipix.api.pagination import CursorParam, Limit
from snipix.api.parameters import ProjectId
from snipix.api.query_guard import reject_unsafe_query
from snipix.api.representations import IfNoneMatchHeader, json_response
from snipix.audit.repository import AuditFilter
from snipix.audit.schemas import AuditCursor, AuditEntry
from snipix.projects.schemas import (
    ListCursor,
    Project,
    ProjectCreate,
    ProjectEntry,
    ProjectStatus,
    ProjectUpdate,
    ProjectVersion,
    PurgeReport,
    RoleFilter,
    Rollback,
    SearchCursor,
    SortField,
    Tag,
    VersionCursor,
)
from snipix.projects.service import ListQuery, ProjectService
from snipix.resources import get_resources
from snipix.wire.models import IsoTime
from snipix.wire.pages import DEFAULT_LIMIT, Page, decode_cursor
from snipix.wire.versions import MAX_VERSION, expected_version, parse_if_match


async def get_project_service(request: Request) -> ProjectService:
    # The request, not `ResourcesDep`: every dependency node costs a hot read some of
    # FastAPI's resolution; the same for the other service getters.
    return get_resources(request).services.projects


ServiceDep = Annotated[ProjectService, Depends(get_project_service)]

_ERRORS = errors(401, 404)
_ROLE_TOO_LOW = {403: "forbidden_role: a member whose role does not allow this."}
# 409: a change racing the project's purge.
_WRITE_ERRORS = errors(
    401, 404, 412, 428, say={409: "The project is being purged.", **_ROLE_TOO_LOW}
)
_ADMIN_ERRORS = errors(401, 403, 404)

router = APIRouter(
    prefix="/api/v1/projects",
    tags=["projects"],
    dependencies=[Depends(reject_unsafe_query)],
    responses=_ERRORS,
)
admin_router = APIRouter(
    prefix="/api/v1/admin",
    tags=["admin"],
    dependencies=[Depends(reject_unsafe_query)],
    responses=_ADMIN_ERRORS,
)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Project)
async def create_project(
    body: ProjectCreate,
    actor: ActorDep,
    service: ServiceDep,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Project:
    """Create a project owned by the caller (version 1); a repeat with the same
    `Idempotency-Key` returns the same project and creates nothing."""
    project, replayed = await service.create(actor, body, idempotency_key=idempotency_key)
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
    response.headers["Location"] = f"/api/v1/projects/{project.id}"
    set_etag(response, project.version)
    return project


@router.get("", response_model=Page[ProjectEntry])
async def list_projects(
    actor: ActorDep,
    service: ServiceDep,
    sort: SortField = SortField.UPDATED_AT,
    status: ProjectStatus | None = None,
    tag: Annotated[Tag | None, Query()] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=200, description="Text search.")
    ] = None,
    role: Annotated[
        RoleFilter | None,
        Query(description="Only projects the caller owns, or shared as editor, viewer, any."),
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Response:
    """The caller's projects and those shared with them (each with the caller's `role`),
    newest first; with `q`, ranked by relevance instead."""
    decoded: ListCursor | SearchCursor | None = None
    if cursor is not None and q is not None:
        decoded = decode_cursor(cursor, SearchCursor)
    elif cursor is not None:
        decoded = decode_cursor(cursor, ListCursor)
    query = ListQuery(
        sort=sort,
        status=status.value if status is not None else None,
        tag=tag,
        text=q,
        limit=limit,
        cursor=decoded,
        role=role,
    )
    return json_response(
        await service.list_serialized(actor, query), version=None, if_none_match=None
    )


@router.get("/{project_id}", response_model=Project)
async def get_project(
    project_id: ProjectId,
    actor: ActorDep,
    service: ServiceDep,
    if_none_match: IfNoneMatchHeader = None,
) -> Response:
    """One project; `ETag` carries its version (`If-None-Match` with it: 304, no body)."""
    found = await service.get_serialized(actor, project_id)
    return json_response(found.payload, version=found.version, if_none_match=if_none_match)


@router.patch("/{project_id}", response_model=Project, responses=_WRITE_ERRORS)
async def update_project(
    project_id: ProjectId,
    body: ProjectUpdate,
    actor: ActorDep,
    service: ServiceDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> Project:
    """Change some fields; needs `If-Match` (or `baseVersion`); makes a new version."""
    expected = expected_version(if_match, body.base_version)
    project = await service.update(actor, project_id, body, expected=expected)
    set_etag(response, project.version)
    return project


@router.delete("/{project_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_WRITE_ERRORS)
async def delete_project(
    project_id: ProjectId, actor: ActorDep, service: ServiceDep, if_match: IfMatchHeader = None
) -> Response:
    """Soft delete (restorable until retention purges it); repeating it is harmless."""
    await service.delete(actor, project_id, expected=parse_if_match(if_match))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{project_id}/restore", response_model=Project, responses=_WRITE_ERRORS)
async def restore_project(
    project_id: ProjectId,
    actor: ActorDep,
    service: ServiceDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> Project:
    """Undo a soft delete; the project returns to lists and search."""
    project = await service.restore(actor, project_id, expected=parse_if_match(if_match))
    set_etag(response, project.version)
    return project


@router.get("/{project_id}/versions", response_model=Page[ProjectVersion])
async def list_versions(
    project_id: ProjectId,
    actor: ActorDep,
    service: ServiceDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[ProjectVersion]:
    """Metadata versions, newest (the current one) first."""
    decoded = decode_cursor(cursor, VersionCursor) if cursor is not None else None
    return await service.versions(actor, project_id, limit=limit, cursor=decoded)


@router.get("/{project_id}/versions/{version}", response_model=ProjectVersion)
async def get_version(
    project_id: ProjectId,
    version: Annotated[int, Path(ge=1, le=MAX_VERSION)],
    actor: ActorDep,
    service: ServiceDep,
) -> ProjectVersion:
    """The project's metadata as it was at one version."""
    return await service.version(actor, project_id, version)


@router.post("/{project_id}/rollback", response_model=Project, responses=_WRITE_ERRORS)
async def rollback_project(
    project_id: ProjectId,
    body: Rollback,
    actor: ActorDep,
    service: ServiceDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> Project:
    """Make a new version whose metadata equals an earlier one."""
    project = await service.rollback(
        actor, project_id, body.version, expected=parse_if_match(if_match)
    )
    set_etag(response, project.version)
    return project


@router.get("/{project_id}/audit", response_model=Page[AuditEntry])
async def project_audit(
    project_id: ProjectId,
    actor: ActorDep,
    service: ServiceDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[AuditEntry]:
    """Who changed this project, when, in which request; newest first."""
    decoded = decode_cursor(cursor, AuditCursor) if cursor is not None else None
    return await service.audit_trail(actor, project_id, limit=limit, cursor=decoded)


@admin_router.get("/projects/deleted", response_model=Page[Project])
async def list_deleted_projects(
    _admin: AdminDep, service: ServiceDep, limit: Limit = DEFAULT_LIMIT, cursor: CursorParam = None
) -> Page[Project]:
    """Admin: soft-deleted projects of every user, most recently deleted first."""
    decoded = decode_cursor(cursor, ListCursor) if cursor is not None else None
    return await service.list_deleted(limit=limit, cursor=decoded)


@admin_router.delete(
    "/projects/{project_id}",
    response_model=PurgeReport,
    responses=errors(say={409: "The project is not deleted."}),
)
async def purge_project(project_id: ProjectId, admin: AdminDep, service: ServiceDep) -> PurgeReport:
    """Admin: remove a soft-deleted project and everything it owns, for good."""
    return await service.purge(admin, project_id)


@admin_router.get("/audit", response_model=Page[AuditEntry])
async def search_audit(
    _admin: AdminDep,
    service: ServiceDep,
    user_id: Annotated[str | None, Query(alias="userId", pattern=r"^[^$]{1,200}$")] = None,
    entity_id: Annotated[str | None, Query(alias="entityId", pattern=r"^[^$]{1,200}$")] = None,
    action: Annotated[str | None, Query(max_length=100, pattern=r"^[a-z_]+\.[a-z_]+$")] = None,
    since: Annotated[IsoTime | None, Query(description="From this time (inclusive).")] = None,
    until: Annotated[IsoTime | None, Query(description="Before this time.")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[AuditEntry]:
    """Admin: audit entries of every user, newest first, filtered."""
    decoded = decode_cursor(cursor, AuditCursor) if cursor is not None else None
    where = AuditFilter(
        user_id=user_id, entity_id=entity_id, action=action, since=since, until=until
    )
    return await service.audit_search(where, limit=limit, cursor=decoded)
