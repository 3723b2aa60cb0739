"""HTTP for a project's members (`/api/v1/projects/{id}/members`): HTTP only, rules live
in `SharingService`."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Depends, Path, Request, Response, status

from snipix.api.answers import errors
from snipix.api.identity import ActorDep
from snipix.api.parameters import ProjectId
from snipix.api.query_guard import reject_unsafe_query
from snipix.projects.schemas import Member, MemberInvite, MemberList, MemberUpdate
from snipix.projects.sharing import SharingService
from snipix.resources import get_resources


async def get_sharing_service(request: Request) -> SharingService:
    return get_resources(request).services.sharing


ServiceDep = Annotated[SharingService, Depends(get_sharing_service)]
MemberId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9_.:@-]{1,200}$", description="The member's user id.")
]

ROLE_TOO_LOW: Final = "forbidden_role: a member whose role does not allow this (owner only)."
_OWNER_ONLY = errors(
    403, 404, say={403: ROLE_TOO_LOW, 409: "The owner cannot be changed, or already a member."}
)

router = APIRouter(
    prefix="/api/v1/projects/{project_id}/members",
    tags=["sharing"],
    dependencies=[Depends(reject_unsafe_query)],
    responses=errors(401, 404),
)


@router.get("", response_model=MemberList)
async def list_members(project_id: ProjectId, actor: ActorDep, service: ServiceDep) -> MemberList:
    """Who the project is shared with: the owner first, then members by user id."""
    return MemberList(items=await service.list(actor, project_id))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Member,
    responses={**_OWNER_ONLY, **errors(say={422: "Invalid body, or no such account."})},
)
async def add_member(
    project_id: ProjectId,
    body: MemberInvite,
    actor: ActorDep,
    service: ServiceDep,
    response: Response,
) -> Member:
    """Owner: share the project with an existing account (by `userId` or `email`) as
    `editor` or `viewer`; the member is mailed a notice."""
    member = await service.add(actor, project_id, body)
    response.headers["Location"] = f"/api/v1/projects/{project_id}/members/{member.user_id}"
    return member


@router.patch("/{user_id}", response_model=Member, responses=_OWNER_ONLY)
async def change_member(
    project_id: ProjectId,
    user_id: MemberId,
    body: MemberUpdate,
    actor: ActorDep,
    service: ServiceDep,
) -> Member:
    """Owner: give a member another role; it holds from their next request."""
    return await service.change(actor, project_id, user_id, body)


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_OWNER_ONLY)
async def remove_member(
    project_id: ProjectId, user_id: MemberId, actor: ActorDep, service: ServiceDep
) -> Response:
    """Owner: stop sharing the project with a member; their next request gets 404."""
    await service.remove(actor, project_id, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
