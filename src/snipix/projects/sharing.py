"""Sharing a project: its members, their roles, and what follows each change.

Only the owner adds, re-roles or removes members; every member (viewers too) may read the
list. The owner cannot be removed or demoted (the owner is the project's `userId`; a
transfer is not offered). Each change is audited under the project (the actor is the
owner who made it), clears the member's cached list pages on every replica (the project
appears or disappears there at once), mails the invited member a notice, and calls
`on_membership_change(project_id, user_id)` — the hook live event streams use to re-check
a subscriber's access.

Invites name an existing account by id or by email. Only the project's owner ever learns
whether an account exists: everyone else is answered 404 or 403 before any account is
looked up (docs/decisions.md, "Sharing").
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

import structlog
from pymongo.errors import DuplicateKeyError

from snipix.audit.repository import AuditRepository, audit_document
from snipix.auth.actor import Actor
from snipix.clock import utc_now_ms
from snipix.db.client import Document
from snipix.errors import Conflict, NotFound, ValidationFailed
from snipix.mail.message import Message
from snipix.mail.outbox import Outbox
from snipix.projects.members import MAX_MEMBERS, MemberRepository, Role, member_id
from snipix.projects.schemas import Member, MemberInvite, MemberRole, MemberUpdate, Project
from snipix.projects.service import ENTITY, ProjectService

log = structlog.get_logger(__name__)

# Called after every committed add, role change or removal, with (project id, user id).
MembershipHook = Callable[[str, str], Awaitable[None]]
SHARED_KIND: Final = "project_shared"
_DELETED_ACCOUNT: Final = "deleted"


async def no_hook(project_id: str, user_id: str) -> None:
    """The default `on_membership_change`: nothing listens."""


class Directory(Protocol):
    """The accounts an invite may name (`accounts.repository.UserRepository`)."""

    async def by_id(self, user_id: str) -> Document | None: ...

    async def by_email(self, email: str) -> Document | None: ...


class SharingService:
    def __init__(
        self,
        projects: ProjectService,
        members: MemberRepository,
        users: Directory,
        audit: AuditRepository,
        *,
        outbox: Outbox | None,
        web_app_url: str,
        on_membership_change: MembershipHook = no_hook,
    ) -> None:
        self._projects = projects
        self._members = members
        self._users = users
        self._audit = audit
        self._outbox = outbox
        self._web_app_url = web_app_url.rstrip("/")
        self._on_change = on_membership_change

    async def list(self, actor: Actor, project_id: str) -> list[Member]:
        """The owner first, then the members by user id (any member may read it)."""
        standing = await self._projects.access(actor, project_id)
        rows = await self._members.of_project(project_id)
        return [Member(user_id=standing.owner_id, role=Role.OWNER)] + [
            Member.from_document(row) for row in rows
        ]

    async def add(self, actor: Actor, project_id: str, invite: MemberInvite) -> Member:
        project = await self._projects.get(actor, project_id, need=Role.OWNER)
        user = await self._account(invite)
        user_id = str(user["_id"])
        if user_id == project.user_id:
            raise Conflict("The project's owner is already in it; invite someone else.")
        if len(await self._members.of_project(project_id, limit=MAX_MEMBERS)) >= MAX_MEMBERS:
            raise Conflict(f"A project can be shared with at most {MAX_MEMBERS} people.")
        now = utc_now_ms()
        doc: Document = {
            "_id": member_id(project_id, user_id),
            "projectId": project_id,
            "userId": user_id,
            "role": invite.role.value,
            "ownerId": project.user_id,
            "addedAt": now,
            "addedBy": actor.user_id,
            "updatedAt": now,
        }
        try:
            await self._members.insert(doc)
        except DuplicateKeyError:
            current = await self._members.get(project_id, user_id)
            role = current["role"] if current is not None else invite.role.value
            raise Conflict(
                f"This account is already a member ({role}); change its role with PATCH.",
                details={"userId": user_id, "role": role},
            ) from None
        await self._changed(actor, project, user_id, "project.member_added", invite.role)
        self._notify(project, user, invite.role)
        return Member.from_document(doc)

    async def change(
        self, actor: Actor, project_id: str, user_id: str, update: MemberUpdate
    ) -> Member:
        project = await self._projects.get(actor, project_id, need=Role.OWNER)
        _not_the_owner(project, user_id)
        now = utc_now_ms()
        doc = await self._members.set_role(project_id, user_id, Role(update.role.value), now)
        if doc is None:
            raise _not_a_member(project_id, user_id)
        await self._changed(actor, project, user_id, "project.member_changed", update.role)
        return Member.from_document(doc)

    async def remove(self, actor: Actor, project_id: str, user_id: str) -> None:
        project = await self._projects.get(actor, project_id, need=Role.OWNER)
        _not_the_owner(project, user_id)
        if not await self._members.remove(project_id, user_id):
            raise _not_a_member(project_id, user_id)
        await self._changed(actor, project, user_id, "project.member_removed", None)

    async def _account(self, invite: MemberInvite) -> Document:
        """The invited account; 422 when there is none (the caller is the owner)."""
        if invite.user_id is not None:
            user = await self._users.by_id(invite.user_id)
            field = "userId"
        else:
            assert invite.email is not None
            user = await self._users.by_email(invite.email)
            field = "email"
        if user is None or user.get("status") == _DELETED_ACCOUNT:
            raise ValidationFailed(
                "No account matches; the person must sign up before a project can be shared "
                "with them.",
                details=[{"loc": ["body", field], "msg": "no such account", "type": "account"}],
            )
        return user

    async def _changed(
        self,
        actor: Actor,
        project: Project,
        user_id: str,
        action: str,
        role: MemberRole | None,
    ) -> None:
        """After a committed membership change: audit, lists, live streams."""
        summary: dict[str, str] = {"member": user_id}
        if role is not None:
            summary["role"] = role.value
        try:
            await self._audit.record(
                audit_document(
                    actor,
                    at=utc_now_ms(),
                    action=action,
                    entity=ENTITY,
                    entity_id=project.id,
                    owner_id=project.user_id,
                    version=project.version,
                    summary=summary,
                )
            )
        finally:
            # The member's list gains or loses the project on every replica; the access
            # check itself reads the member row, so it needs no invalidation.
            await self._projects.invalidate_member_list(user_id)
        log.info(action.replace(".", " "), project_id=project.id, member=user_id)
        await self._on_change(project.id, user_id)

    def _notify(self, project: Project, user: Document, role: MemberRole) -> None:
        email = user.get("email")
        if self._outbox is None or not email:
            return
        role_name = role.value
        url = f"{self._web_app_url}/projects/{project.id}"
        greeting = f"Hello {user.get('name') or ''},".replace(" ,", ",")
        lead = f'You can now open the project "{project.name}" in Snipix as {role_name}.'
        text = f"{greeting}\n\n{lead}\n\n{url}\n"
        body = (
            f"<p>{html.escape(greeting)}</p><p>{html.escape(lead)}</p>"
            f'<p><a href="{html.escape(url)}">Open the project</a></p>'
        )
        self._outbox.submit(
            Message(
                to=email,
                subject=f'"{project.name}" was shared with you on Snipix',
                text=text,
                html=body,
                kind=SHARED_KIND,
            )
        )


def _not_the_owner(project: Project, user_id: str) -> None:
    if user_id == project.user_id:
        raise Conflict("The owner's role cannot be changed or removed (no transfer here).")


def _not_a_member(project_id: str, user_id: str) -> NotFound:
    return NotFound(f"{user_id} is not a member of project {project_id}.")
