"""Who is making a change, as every service method that writes receives it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from snipix.auth.dependencies import AdminUser, CurrentUser
from snipix.errors import request_id_of


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: str
    request_id: str | None = None
    is_admin: bool = False

    @classmethod
    def system(cls, job: str) -> Actor:
        """Changes made by the service itself (retention), recorded under a named job."""
        return cls(user_id=f"system:{job}", request_id=None, is_admin=True)


async def current_actor(request: Request, user: CurrentUser) -> Actor:
    return Actor(user_id=user.user_id, request_id=request_id_of(request), is_admin=user.is_admin)


async def admin_actor(request: Request, user: AdminUser) -> Actor:
    return Actor(user_id=user.user_id, request_id=request_id_of(request), is_admin=True)


ActorDep = Annotated[Actor, Depends(current_actor)]
AdminDep = Annotated[Actor, Depends(admin_actor)]
