"""Who may open a project besides its owner, and how much they may do: `project_members`.

One document per (project, member): `projectId`, `userId`, `role` (`editor` or `viewer`),
`ownerId` (the project's owner, so a member's read finds the owner's cached project
without reading the project first), `addedAt`, `addedBy`, `updatedAt`. The owner has no
row: ownership is the project's `userId` (one source of truth, nothing to migrate for
projects created before sharing; docs/decisions.md, "Sharing").

Queries: a member by (project, user) — its `_id` is the pair; a project's members and the
purge's delete — the unique `project_user` index; the projects shared with a user, optionally of one
role — `user_role` (userId, role, projectId).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from pymongo import ASCENDING, ReturnDocument

from snipix.db.client import Database, Document
from snipix.errors import Forbidden

MEMBERS: Final = "project_members"
BY_PROJECT_INDEX: Final = "project_user"
BY_USER_INDEX: Final = "user_role"
# A project's members answered at once (the member list has no pages) and the most a
# project may have: far more than a video team, and it bounds every read of the list.
MAX_MEMBERS: Final = 100
# The projects shared with one user that a list or search considers: the newest-first
# list merges them with the user's own; past this, the oldest shares are not listed.
MAX_SHARED_LISTED: Final = 1_000

_MEMBER_FIELDS: Final = {
    "_id": 0,
    "projectId": 1,
    "userId": 1,
    "role": 1,
    "ownerId": 1,
    "addedAt": 1,
    "addedBy": 1,
    "updatedAt": 1,
}
_SHARED_FIELDS: Final = {"_id": 0, "projectId": 1, "role": 1}


class Role(StrEnum):
    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"


# What each role may do includes everything of the roles below it.
_RANK: Final = {Role.VIEWER: 0, Role.EDITOR: 1, Role.OWNER: 2}


def allows(role: Role, need: Role) -> bool:
    return _RANK[role] >= _RANK[need]


class ForbiddenRole(Forbidden):
    """A member asked for more than their role allows. Only members ever see it: anyone
    else gets 404 for the project, so a 403 never confirms a project exists."""

    code = "forbidden_role"


_WHAT: Final = {Role.EDITOR: "an editor", Role.OWNER: "the owner"}


def forbidden(project_id: str, role: Role, need: Role) -> ForbiddenRole:
    return ForbiddenRole(
        f"Your role in project {project_id} is {role.value}; this needs {_WHAT[need]}.",
        details={"role": role.value, "needs": need.value},
    )


@dataclass(frozen=True, slots=True)
class Access:
    """The caller's standing in one project: the answer of the access check."""

    role: Role
    owner_id: str


def member_id(project_id: str, user_id: str) -> str:
    """A member row's `_id`: the pair, so an invite repeated by a retrying client meets
    the first in the primary key."""
    return f"{project_id}:{user_id}"


class MemberRepository:
    def __init__(self, db: Database) -> None:
        self._members = db[MEMBERS]

    async def get(self, project_id: str, user_id: str) -> Document | None:
        # By `_id`: the primary-key path on every engine.
        return await self._members.find_one({"_id": member_id(project_id, user_id)}, _MEMBER_FIELDS)

    async def insert(self, doc: Document) -> None:
        await self._members.insert_one(doc)

    async def set_role(
        self, project_id: str, user_id: str, role: Role, at: datetime
    ) -> Document | None:
        """The member after the change; None when not a member."""
        return await self._members.find_one_and_update(
            {"_id": member_id(project_id, user_id)},
            {"$set": {"role": role.value, "updatedAt": at}},
            projection=_MEMBER_FIELDS,
            return_document=ReturnDocument.AFTER,
        )

    async def remove(self, project_id: str, user_id: str) -> bool:
        result = await self._members.delete_one({"_id": member_id(project_id, user_id)})
        return result.deleted_count > 0

    async def of_project(self, project_id: str, *, limit: int = MAX_MEMBERS) -> list[Document]:
        """A project's members, by user id."""
        found = self._members.find({"projectId": project_id}, _MEMBER_FIELDS, hint=BY_PROJECT_INDEX)
        return await found.sort("userId", ASCENDING).limit(limit).to_list()

    async def shared_with(self, user_id: str, role: Role | None) -> dict[str, Role]:
        """The projects shared with `user_id` (of one role, if given): id -> role."""
        query: dict[str, Any] = {"userId": user_id}
        if role is not None:
            query["role"] = role.value
        found = self._members.find(query, _SHARED_FIELDS, hint=BY_USER_INDEX)
        docs = await found.limit(MAX_SHARED_LISTED).to_list()
        return {doc["projectId"]: Role(doc["role"]) for doc in docs}
