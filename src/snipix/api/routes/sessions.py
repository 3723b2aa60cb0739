"""HTTP for editing sessions (`/api/v1/projects/{id}/session`, `/api/v1/sessions/recent`):
HTTP only, rules live in `SessionService`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from snipix.api.answers import errors
from snipix.api.identity import ActorDep
from snipix.api.pagination import CursorParam, Limit
from snipix.api.parameters import ProjectId
from snipix.api.query_guard import reject_unsafe_query
from snipix.resources import get_resources
from snipix.sessions.schemas import EditingSession, RecentCursor, RecentProject, SessionUpdate
from snipix.sessions.service import SessionService
from snipix.wire.pages import DEFAULT_LIMIT, Page, decode_cursor


async def get_session_service(request: Request) -> SessionService:
    return get_resources(request).services.sessions


ServiceDep = Annotated[SessionService, Depends(get_session_service)]

_NOT_FOUND = errors(404)

router = APIRouter(
    prefix="/api/v1",
    tags=["sessions"],
    dependencies=[Depends(reject_unsafe_query)],
    responses=errors(401),
)


@router.get("/projects/{project_id}/session", response_model=EditingSession, responses=_NOT_FOUND)
async def get_session(
    project_id: ProjectId, actor: ActorDep, service: ServiceDep
) -> EditingSession:
    """The caller's session in a project; defaults (`lastOpenedAt: null`) if never opened."""
    return await service.get(actor, project_id)


@router.put("/projects/{project_id}/session", response_model=EditingSession, responses=_NOT_FOUND)
async def put_session(
    project_id: ProjectId, body: SessionUpdate, actor: ActorDep, service: ServiceDep
) -> EditingSession:
    """Replace the caller's session (last write wins, no `If-Match`); marks it opened now."""
    return await service.save(actor, project_id, body)


@router.get("/sessions/recent", response_model=Page[RecentProject])
async def recent_projects(
    actor: ActorDep, service: ServiceDep, limit: Limit = DEFAULT_LIMIT, cursor: CursorParam = None
) -> Page[RecentProject]:
    """The caller's live projects, most recently opened first."""
    decoded = decode_cursor(cursor, RecentCursor) if cursor is not None else None
    return await service.recent(actor, limit=limit, cursor=decoded)
