"""The project rules: ownership, optimistic concurrency, versions, audit, soft delete.

Every change is one unit of work (`UnitOfWork`): the superseded state goes to
`project_versions`, the project is updated only if it is still at the version the change
was based on, and an audit entry names who, what, when, the request and the new version.
With a transaction the three commit together or not at all. Without one (a standalone
mongod) they run in that order: a failure after the version write leaves an exact copy
of a state that existed (harmless, idempotent); a failure after the project update leaves
a change without its audit entry, reported to the client as an error — its superseded
state in `project_versions` still records that it happened.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import structlog
from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from snipix.audit.repository import AuditFilter, AuditRepository, audit_document
from snipix.audit.schemas import AuditCursor, AuditEntry
from snipix.auth.actor import Actor
from snipix.cache.service import Cache, Loaded
from snipix.clock import utc_now_ms
from snipix.db.client import Database, Document
from snipix.db.transactions import UnitOfWork
from snipix.errors import (
    Conflict,
    NotFound,
    PreconditionRequired,
    ValidationFailed,
    VersionMismatch,
)
from snipix.projects.members import (
    Access,
    MemberRepository,
    Role,
    allows,
    forbidden,
)
from snipix.projects.repository import ProjectRepository, rank
from snipix.projects.schemas import (
    METADATA_FIELDS,
    ListCursor,
    Project,
    ProjectCreate,
    ProjectEntry,
    ProjectUpdate,
    ProjectVersion,
    PurgeReport,
    RoleFilter,
    SearchCursor,
    SortField,
    VersionCursor,
)
from snipix.wire.idempotency import fingerprint
from snipix.wire.pages import Page, encode_cursor
from snipix.wire.versions import ANY_VERSION, Expected

log = structlog.get_logger(__name__)

ENTITY = "project"
# Deep pages of a ranked search are not useful and cost a growing skip: 1,000 results.
MAX_SEARCH_RESULTS = 1_000
ANY_VERSION_ATTEMPTS = 10
# Media: called with the project id during a purge, before its documents go, to
# delete what the project owns outside the database (its media files).
PurgeHook = Callable[[str], Awaitable[None]]
# Cache kinds: one project by id, and a user's list pages.
CACHED_PROJECT = "project"
CACHED_LIST = "projects"


def _not_found(project_id: str) -> NotFound:
    return NotFound(f"Project {project_id} was not found.")


def _require(project_id: str, role: Role, need: Role) -> None:
    if not allows(role, need):
        raise forbidden(project_id, role, need)


def _snapshot(doc: Document) -> Document:
    state = {name: doc.get(name) for name in METADATA_FIELDS}
    state["isDeleted"] = doc.get("isDeleted", False)
    state["deletedAt"] = doc.get("deletedAt")
    return state


# A letter or digit: what a text index makes a searchable term of (not `_` or punctuation).
_SEARCHABLE = re.compile(r"[^\W_]")


@dataclass(frozen=True, slots=True)
class ListQuery:
    sort: SortField = SortField.UPDATED_AT
    status: str | None = None
    tag: str | None = None
    text: str | None = None
    limit: int = 50
    cursor: ListCursor | SearchCursor | None = None
    # None: the caller's own projects and those shared with them.
    role: RoleFilter | None = None

    @property
    def owned(self) -> bool:
        return self.role in (None, RoleFilter.OWNER)

    @property
    def shared(self) -> bool:
        return self.role != RoleFilter.OWNER

    @property
    def shared_role(self) -> Role | None:
        """The one shared role asked for, if any."""
        return (
            Role(self.role.value) if self.role in (RoleFilter.EDITOR, RoleFilter.VIEWER) else None
        )

    def __post_init__(self) -> None:
        # Found by the fuzzer: `?q=-`, `?q=%20` or `?q="` reached `$text` with no
        # searchable term, which the database refuses (OperationFailure: a 500). A search
        # needs one term that is not negated (`-word` excludes).
        if self.text is not None and not any(
            _SEARCHABLE.search(term) for term in self.text.split() if not term.startswith("-")
        ):
            raise ValidationFailed(
                "Search for at least one word (letters or digits, not only `-excluded` ones).",
                details=[{"loc": ["query", "q"], "msg": "no searchable word", "type": "search"}],
            )


class ProjectService:
    """The project rules. `cache` serves `get` and the list; every change invalidates it
    after its commit (see `snipix.cache.service`)."""

    def __init__(
        self,
        projects: ProjectRepository,
        members: MemberRepository,
        audit: AuditRepository,
        unit: UnitOfWork,
        cache: Cache,
        *,
        owned: Sequence[tuple[str, str]],
        on_purge: Sequence[PurgeHook] = (),
    ) -> None:
        self._projects = projects
        self._members = members
        # What a purge deletes besides the project: each collection a project owns, with
        # the index of its `projectId` delete (the registry's, `catalogue.PURGED`). Passed
        # in: the registry names every domain's collections, so importing it here would
        # make the domains import each other in a circle.
        self._purged = tuple(owned)
        self._audit = audit
        self._unit = unit
        self._cache = cache
        self._on_purge = tuple(on_purge)

    # --- reads ---------------------------------------------------------------------------

    async def get(self, actor: Actor, project_id: str, *, need: Role = Role.VIEWER) -> Project:
        """The live project, if the caller's role in it is at least `need`: 404 for anyone
        not a member (never a 403 that confirms it exists), 403 for a member whose role is
        too low. Through the cache."""
        _, found = await self.open(actor, project_id, need=need)
        # orjson then validation: faster than validate_json (docs/performance.md).
        return Project.model_validate(orjson.loads(found.payload))

    async def get_serialized(
        self, actor: Actor, project_id: str, *, need: Role = Role.VIEWER
    ) -> Loaded:
        """The project's version and its JSON as the API answers it (for the GET route,
        which sends these bytes as they are: no model round trip on a cache hit)."""
        _, found = await self.open(actor, project_id, need=need)
        return found

    async def access(self, actor: Actor, project_id: str, *, need: Role = Role.VIEWER) -> Access:
        """The caller's role in a live project and its owner (see `open`)."""
        standing, _ = await self.open(actor, project_id, need=need)
        return standing

    async def open(
        self, actor: Actor, project_id: str, *, need: Role = Role.VIEWER
    ) -> tuple[Access, Loaded]:
        """THE access check of a live project: the caller's role and the project, or
        NotFound (not a member, or no such live project), or ForbiddenRole (a member whose
        role is below `need`). Every domain asks this before reading or changing what a
        project owns.

        The owner's check is the cached project itself (an entry is its owner's): no extra
        read on the hot path. A member's role is read from the database on every request,
        never cached, so a removal or a demotion holds at once on every replica; the project
        then comes from the owner's cache entry (docs/decisions.md, "Sharing").
        """
        found = await self._cache.entity(
            CACHED_PROJECT, project_id, actor.user_id, self._loader(project_id, actor.user_id)
        )
        if found is not None:
            return Access(Role.OWNER, actor.user_id), found
        member = await self._members.get(project_id, actor.user_id)
        if member is not None:
            owner_id = member["ownerId"]
            found = await self._cache.entity(
                CACHED_PROJECT, project_id, owner_id, self._loader(project_id, owner_id)
            )
            if found is not None:
                standing = Access(Role(member["role"]), owner_id)
                _require(project_id, standing.role, need)
                return standing, found
        raise _not_found(project_id)

    def _loader(self, project_id: str, owner_id: str) -> Callable[[], Awaitable[Loaded | None]]:
        async def load() -> Loaded | None:
            doc = await self._projects.get(project_id, owner_id)
            if doc is None:
                return None
            return Loaded(doc["version"], Project.from_document(doc).model_dump_json().encode())

        return load

    async def _role(self, actor: Actor, doc: Document, need: Role) -> Role:
        """The caller's role in the project `doc` (read by id, deleted or not), checked
        against `need`; NotFound when not a member. For paths that must see deleted
        projects too (history, audit, delete, restore) or read inside a transaction."""
        if doc["userId"] == actor.user_id:
            return Role.OWNER
        member = await self._members.get(doc["_id"], actor.user_id)
        if member is None:
            raise _not_found(doc["_id"])
        role = Role(member["role"])
        _require(doc["_id"], role, need)
        return role

    async def list_projects(self, actor: Actor, query: ListQuery) -> Page[ProjectEntry]:
        return Page[ProjectEntry].model_validate(
            orjson.loads(await self.list_serialized(actor, query))
        )

    async def list_serialized(self, actor: Actor, query: ListQuery) -> bytes:
        """A page of the caller's projects as the API answers it, through the cache (keyed
        by the whole query)."""

        async def load() -> bytes:
            return (await self._list(actor, query)).model_dump_json().encode()

        cursor = query.cursor.model_dump_json() if query.cursor is not None else ""
        key = "|".join(
            [
                query.sort.value,
                query.status or "",
                query.tag or "",
                query.text or "",
                query.role or "",
                cursor,
            ]
        )
        key += f"|{query.limit}"
        return await self._cache.page(CACHED_LIST, actor.user_id, key, load)

    async def _list(self, actor: Actor, query: ListQuery) -> Page[ProjectEntry]:
        """The caller's own projects and those shared with them, merged in one order.

        Two index-backed reads, each limited to a page and one: the owner's (as before
        sharing) and the shared projects among the ids of the caller's member rows (the
        `_id` index). The page is the first `limit` of both in the list's order.
        """
        if query.text is not None:
            return await self._search(actor, query)
        after = query.cursor if isinstance(query.cursor, ListCursor) else None
        listed: list[tuple[Document, Role]] = []
        if query.owned:
            docs = await self._projects.list_active(
                actor.user_id,
                sort=query.sort,
                status=query.status,
                tag=query.tag,
                limit=query.limit + 1,
                after=after,
            )
            listed += [(doc, Role.OWNER) for doc in docs]
        if query.shared:
            roles = await self._members.shared_with(actor.user_id, query.shared_role)
            if roles:
                docs = await self._projects.list_among(
                    sorted(roles),
                    sort=query.sort,
                    status=query.status,
                    tag=query.tag,
                    limit=query.limit + 1,
                    after=after,
                )
                listed += [(doc, roles[doc["_id"]]) for doc in docs]
        key = query.sort.value
        listed.sort(key=lambda pair: (pair[0][key], pair[0]["_id"]), reverse=True)
        items = [ProjectEntry.listed(doc, role) for doc, role in listed[: query.limit]]
        next_cursor = None
        if len(listed) > query.limit:
            last = listed[query.limit - 1][0]
            next_cursor = encode_cursor(ListCursor(t=last[key], id=last["_id"]))
        return Page[ProjectEntry](items=items, next_cursor=next_cursor)

    async def _search(self, actor: Actor, query: ListQuery) -> Page[ProjectEntry]:
        assert query.text is not None
        offset = query.cursor.o if isinstance(query.cursor, SearchCursor) else 0
        roles: dict[str, Role] = {}
        hits: list[tuple[str, float]] = []
        if query.owned:
            hits += await self._projects.search(
                actor.user_id,
                query.text,
                status=query.status,
                tag=query.tag,
                limit=MAX_SEARCH_RESULTS,
            )
            roles.update((project_id, Role.OWNER) for project_id, _ in hits)
        if query.shared:
            shared = await self._members.shared_with(actor.user_id, query.shared_role)
            if shared:
                found = await self._projects.search_among(
                    sorted(shared),
                    query.text,
                    status=query.status,
                    tag=query.tag,
                    limit=MAX_SEARCH_RESULTS,
                )
                hits += found
                roles.update((project_id, shared[project_id]) for project_id, _ in found)
        hits = rank(hits)[:MAX_SEARCH_RESULTS]
        page = [project_id for project_id, _ in hits[offset : offset + query.limit]]
        docs = await self._projects.get_many(None, page) if page else []
        items = [ProjectEntry.listed(doc, roles[doc["_id"]]) for doc in docs]
        more = offset + query.limit < len(hits)
        next_cursor = encode_cursor(SearchCursor(o=offset + query.limit)) if more else None
        return Page[ProjectEntry](items=items, next_cursor=next_cursor)

    async def live_ids(self, actor: Actor, project_ids: list[str]) -> set[str]:
        """Which of these are live (not deleted) projects the caller owns or is a member of."""
        docs = await self._projects.get_many(None, project_ids)
        return {doc["_id"] for doc in await self._readable(actor, docs)}

    async def live_names(self, actor: Actor, project_ids: list[str]) -> dict[str, str]:
        """Names of the live (not deleted) projects among these ids the caller owns or is a
        member of, by id."""
        docs = await self._projects.live_names(project_ids)
        return {doc["_id"]: doc["name"] for doc in await self._readable(actor, docs)}

    async def _readable(self, actor: Actor, docs: list[Document]) -> list[Document]:
        """Those of `docs` the caller owns or is a member of."""
        others = [doc for doc in docs if doc["userId"] != actor.user_id]
        shared: set[str] = set()
        if others:
            roles = await self._members.shared_with(actor.user_id, None)
            shared = {doc["_id"] for doc in others if doc["_id"] in roles}
        return [doc for doc in docs if doc["userId"] == actor.user_id or doc["_id"] in shared]

    async def _owned(
        self, actor: Actor, project_id: str, *, deleted: bool | None, need: Role = Role.VIEWER
    ) -> Document:
        """The project by id (live, deleted or either), if the caller's role allows `need`."""
        doc = await self._projects.get(project_id, None, deleted=deleted)
        if doc is None:
            raise _not_found(project_id)
        await self._role(actor, doc, need)
        return doc

    async def versions(
        self, actor: Actor, project_id: str, *, limit: int, cursor: VersionCursor | None
    ) -> Page[ProjectVersion]:
        """Newest first; the first page starts with the current version."""
        current = await self._owned(actor, project_id, deleted=False)
        items: list[ProjectVersion] = []
        before = cursor.v if cursor is not None else None
        if before is None:
            items.append(
                ProjectVersion.from_snapshot(
                    current["version"],
                    _snapshot(current),
                    created_at=current["updatedAt"],
                    current=True,
                )
            )
            before = current["version"]
        docs = await self._projects.versions(
            project_id, limit=limit - len(items) + 1, before=before
        )
        room = limit - len(items)
        items += [
            ProjectVersion.from_snapshot(
                doc["version"], doc["snapshot"], created_at=doc["createdAt"], current=False
            )
            for doc in docs[:room]
        ]
        more = len(docs) > room
        next_cursor = encode_cursor(VersionCursor(v=items[-1].version)) if more else None
        return Page[ProjectVersion](items=items, next_cursor=next_cursor)

    async def version(self, actor: Actor, project_id: str, version: int) -> ProjectVersion:
        current = await self._owned(actor, project_id, deleted=False)
        if version == current["version"]:
            return ProjectVersion.from_snapshot(
                version, _snapshot(current), created_at=current["updatedAt"], current=True
            )
        doc = (
            await self._projects.version(project_id, version)
            if version < current["version"]
            else None
        )
        if doc is None:
            raise NotFound(
                f"Project {project_id} has no version {version} "
                f"(its current version is {current['version']})."
            )
        return ProjectVersion.from_snapshot(
            version, doc["snapshot"], created_at=doc["createdAt"], current=False
        )

    async def audit_trail(
        self, actor: Actor, project_id: str, *, limit: int, cursor: AuditCursor | None
    ) -> Page[AuditEntry]:
        await self._owned(actor, project_id, deleted=None)
        docs = await self._audit.for_entity(ENTITY, project_id, limit=limit + 1, cursor=cursor)
        return _audit_page(docs, limit)

    async def audit_search(
        self, where: AuditFilter, *, limit: int, cursor: AuditCursor | None
    ) -> Page[AuditEntry]:
        docs = await self._audit.search(where, limit=limit + 1, cursor=cursor)
        return _audit_page(docs, limit)

    async def list_deleted(self, *, limit: int, cursor: ListCursor | None) -> Page[Project]:
        docs = await self._projects.list_deleted(limit=limit + 1, after=cursor)
        items = [Project.from_document(doc) for doc in docs[:limit]]
        next_cursor = None
        if len(docs) > limit:
            last = docs[limit - 1]
            next_cursor = encode_cursor(ListCursor(t=last["deletedAt"], id=last["_id"]))
        return Page[Project](items=items, next_cursor=next_cursor)

    # --- changes -------------------------------------------------------------------------

    async def create(
        self, actor: Actor, data: ProjectCreate, *, idempotency_key: str | None = None
    ) -> tuple[Project, bool]:
        """The new project, and whether this was a repeat of an earlier create.

        With an idempotency key the project's id is derived from (user, key), so a repeat
        (a client retrying after a lost answer or a 503) meets the first insert in the
        unique `_id` index instead of creating a second project.
        """
        now = utc_now_ms()
        request = data.model_dump(mode="json")
        project_id = str(ObjectId())
        if idempotency_key is not None:
            digest = fingerprint([actor.user_id, idempotency_key])
            project_id = digest[:24]
        doc: Document = {
            "_id": project_id,
            "userId": actor.user_id,
            "name": data.name,
            "description": data.description,
            "status": data.status.value,
            "tags": data.tags,
            "media": data.media.model_dump(mode="python") if data.media is not None else None,
            "createdAt": now,
            "updatedAt": now,
            "version": 1,
            "isDeleted": False,
            "deletedAt": None,
        }
        if idempotency_key is not None:
            doc["createdWith"] = fingerprint(request)

        async def work(session: AsyncClientSession | None) -> None:
            await self._projects.insert(doc, session)
            await self._audit.record(
                audit_document(
                    actor,
                    at=now,
                    action="project.created",
                    entity=ENTITY,
                    entity_id=doc["_id"],
                    owner_id=actor.user_id,
                    version=1,
                    summary={"name": data.name},
                ),
                session,
            )

        try:
            await self._unit.run(work)
        except DuplicateKeyError:
            if idempotency_key is None:
                raise
            return await self._replayed_create(actor, project_id, fingerprint(request)), True
        finally:
            # Also when the audit write failed after the insert (ordered writes): the
            # project may exist, so no list page may keep saying it does not.
            await self._cache.invalidate_pages(CACHED_LIST, actor.user_id)
        log.info("project created", project_id=doc["_id"])
        return Project.from_document(doc), False

    async def _replayed_create(self, actor: Actor, project_id: str, request: str) -> Project:
        existing = await self._projects.get(project_id, actor.user_id, deleted=None)
        if existing is None or existing.get("createdWith") != request:
            raise ValidationFailed(
                "This Idempotency-Key was already used to create a different project; "
                "use a new key for a new project."
            )
        log.info("project create replayed", project_id=project_id)
        return Project.from_document(existing)

    async def update(
        self, actor: Actor, project_id: str, data: ProjectUpdate, *, expected: Expected
    ) -> Project:
        if expected is None:
            raise PreconditionRequired(
                "Send If-Match with the project's ETag (or baseVersion) so this change cannot "
                "overwrite someone else's."
            )
        changes = data.changes()
        return await self._change(
            actor,
            project_id,
            action="project.updated",
            expected=expected,
            deleted=False,
            need=Role.EDITOR,
            build=lambda current, now: ({**changes, "updatedAt": now}, ()),
            summary={"fields": sorted(changes)},
        )

    async def delete(self, actor: Actor, project_id: str, *, expected: Expected) -> None:
        """Soft delete (the owner only); deleting a deleted project changes nothing."""
        doc = await self._owned(actor, project_id, deleted=None, need=Role.OWNER)
        if doc["isDeleted"]:
            return
        await self._change(
            actor,
            project_id,
            action="project.deleted",
            expected=expected,
            deleted=False,
            need=Role.OWNER,
            build=lambda current, now: (
                {"isDeleted": True, "deletedAt": now, "deletedBy": actor.user_id, "updatedAt": now},
                (),
            ),
            summary={},
        )

    async def restore(self, actor: Actor, project_id: str, *, expected: Expected) -> Project:
        """Undo a soft delete (the owner only); restoring a live project returns it unchanged."""
        doc = await self._owned(actor, project_id, deleted=None, need=Role.OWNER)
        if not doc["isDeleted"]:
            return Project.from_document(doc)
        return await self._change(
            actor,
            project_id,
            action="project.restored",
            expected=expected,
            deleted=True,
            need=Role.OWNER,
            build=lambda current, now: (
                {"isDeleted": False, "deletedAt": None, "updatedAt": now},
                ("deletedBy",),
            ),
            summary={},
        )

    async def rollback(
        self, actor: Actor, project_id: str, version: int, *, expected: Expected
    ) -> Project:
        """A new version whose metadata equals `version`'s (the owner only); history is
        never rewritten."""
        await self._owned(actor, project_id, deleted=False, need=Role.OWNER)
        target = await self.version(actor, project_id, version)
        restored = target.model_dump(mode="json")
        state = {name: restored[name] for name in METADATA_FIELDS}
        return await self._change(
            actor,
            project_id,
            action="project.rolled_back",
            expected=expected,
            deleted=False,
            need=Role.OWNER,
            build=lambda current, now: ({**state, "updatedAt": now}, ()),
            summary={"toVersion": version},
        )

    async def _change(
        self,
        actor: Actor,
        project_id: str,
        *,
        action: str,
        expected: Expected,
        deleted: bool,
        need: Role,
        build: Callable[[Document, datetime], tuple[dict[str, Any], tuple[str, ...]]],
        summary: dict[str, Any],
    ) -> Project:
        # The version a change may have written, set before the update is sent: when the
        # unit of work fails after it (a lost acknowledgement, the audit write), the change
        # may have committed, so the cache is invalidated at that version all the same.
        touched: Document | None = None

        async def work(session: AsyncClientSession | None) -> Document:
            nonlocal touched
            current = await self._projects.get(project_id, None, deleted=deleted, session=session)
            if current is None:
                raise _not_found(project_id)
            # The role is checked against the state the change applies to, in its
            # transaction: a member removed meanwhile changes nothing.
            await self._role(actor, current, need)
            version = current["version"]
            if current.get("purgingAt") is not None:
                raise Conflict(f"Project {project_id} is being purged; it can no longer change.")
            if isinstance(expected, int) and expected != version:
                raise VersionMismatch(
                    f"Project {project_id} changed since version {expected}; it is now at "
                    f"version {version}. Reload it and apply your change again.",
                    current_version=version,
                )
            now = utc_now_ms()
            changes, unset = build(current, now)
            try:
                await self._projects.save_version(
                    {
                        "_id": f"{project_id}:{version}",
                        "projectId": project_id,
                        "userId": current["userId"],
                        "version": version,
                        "snapshot": _snapshot(current),
                        "createdAt": current["updatedAt"],
                        "supersededAt": now,
                        "supersededBy": action,
                    },
                    session,
                )
            except DuplicateKeyError:
                # A concurrent change superseded this version first (inside a transaction).
                raise await self._lost_race(actor, project_id, version) from None
            touched = {"_id": project_id, "version": version + 1, "userId": current["userId"]}
            updated = await self._projects.update(
                project_id, version, changes, unset=unset, session=session
            )
            if updated is None:
                raise await self._lost_race(actor, project_id, version)
            await self._audit.record(
                audit_document(
                    actor,
                    at=now,
                    action=action,
                    entity=ENTITY,
                    entity_id=project_id,
                    owner_id=current["userId"],
                    version=updated["version"],
                    summary={**summary, "fromVersion": version},
                ),
                session,
            )
            return updated

        # `If-Match: *` accepts any current version, so losing a race to a concurrent change
        # means trying again on top of it, not a 412.
        attempts = ANY_VERSION_ATTEMPTS if expected == ANY_VERSION else 1
        try:
            for attempt in range(1, attempts + 1):
                try:
                    updated = await self._unit.run(work)
                    break
                except VersionMismatch:
                    if attempt == attempts:
                        raise
        finally:
            if touched is not None:
                await self._invalidate(touched)
        log.info(action.replace(".", " "), project_id=project_id, version=updated["version"])
        return Project.from_document(updated)

    async def _invalidate(self, doc: Document) -> None:
        """After a committed change: no replica serves (or stores) the state before it, in
        the project or in any list that shows it (its owner's and its members')."""
        await self._cache.invalidate(CACHED_PROJECT, doc["_id"], doc["version"])
        await self.invalidate_lists(doc["_id"], doc["userId"])

    async def invalidate_member_list(self, user_id: str) -> None:
        """After a membership change: `user_id`'s list pages, on every replica."""
        await self._cache.invalidate_pages(CACHED_LIST, user_id)

    async def invalidate_lists(self, project_id: str, owner_id: str) -> None:
        """Every list page that may show the project: its owner's and each member's."""
        await self._cache.invalidate_pages(CACHED_LIST, owner_id)
        for member in await self._members.of_project(project_id):
            await self._cache.invalidate_pages(CACHED_LIST, member["userId"])

    async def _lost_race(self, actor: Actor, project_id: str, version: int) -> VersionMismatch:
        """Someone else's change landed between our read and our write."""
        latest = await self._projects.get(project_id, None, deleted=None)
        current_version = latest["version"] if latest is not None else version + 1
        return VersionMismatch(
            f"Project {project_id} changed while this change was being saved; it is now at "
            f"version {current_version}. Reload it and apply your change again.",
            current_version=current_version,
        )

    # --- recovery and retention (admin and the retention job only) -----------------------

    async def purge(self, actor: Actor, project_id: str) -> PurgeReport:
        """Delete a soft-deleted project and everything it owns, for good."""
        doc = await self._projects.get(project_id, None, deleted=None)
        if doc is None:
            raise _not_found(project_id)
        if not doc["isDeleted"]:
            raise Conflict(
                f"Project {project_id} is not deleted; delete it first (it stays restorable "
                "until it is purged)."
            )
        report = await self._purge(actor, project_id, reason="admin")
        if report is None:
            raise Conflict(f"Project {project_id} was restored; it was not purged.")
        return report

    async def _purge(self, actor: Actor, project_id: str, *, reason: str) -> PurgeReport | None:
        """Purge a soft-deleted project; None if it was restored before the purge began.

        The project is claimed first (`purgingAt`, only while it is still deleted): from
        then on no change applies to it, so a restore racing the purge either wins before
        the claim (nothing is deleted) or is refused after it — never a live project whose
        timeline and versions were deleted under it.
        """
        doc = await self._projects.claim_for_purge(project_id, utc_now_ms())
        if doc is None:
            log.info("purge skipped", project_id=project_id, reason="restored")
            return None
        # The audit entry goes before the deletes: an interrupted purge is on record, and
        # repeating it (the claim stays) finishes the job.
        await self._audit.record(
            audit_document(
                actor,
                at=utc_now_ms(),
                action="project.purged",
                entity=ENTITY,
                entity_id=project_id,
                owner_id=doc["userId"],
                version=doc["version"],
                summary={"reason": reason, "name": doc.get("name")},
            )
        )
        # Media: files first, while the claimed project still exists, so an
        # interrupted purge is finished by the next sweep (hooks are idempotent).
        for hook in self._on_purge:
            await hook(project_id)
        deleted = await self._projects.purge(project_id, self._purged)
        await self._cache.forget(CACHED_PROJECT, project_id)
        await self._cache.invalidate_pages(CACHED_LIST, doc["userId"])
        log.info("project purged", project_id=project_id, reason=reason, deleted=deleted)
        return PurgeReport(project_id=project_id, deleted=deleted)

    async def expired(self, retention: timedelta, *, now: datetime, limit: int) -> list[Document]:
        return await self._projects.expired(now - retention, limit=limit)

    async def purge_expired(self, doc: Document, actor: Actor) -> PurgeReport | None:
        return await self._purge(actor, doc["_id"], reason="retention")


def _audit_page(docs: list[Document], limit: int) -> Page[AuditEntry]:
    items = [AuditEntry.from_document(doc) for doc in docs[:limit]]
    next_cursor = None
    if len(docs) > limit:
        last = docs[limit - 1]
        next_cursor = encode_cursor(AuditCursor(at=last["at"], id=str(last["_id"])))
    return Page[AuditEntry](items=items, next_cursor=next_cursor)


def project_service(
    db: Database,
    unit: UnitOfWork,
    *,
    cache: Cache,
    owned: Sequence[tuple[str, str]],
    on_purge: Sequence[PurgeHook] = (),
) -> ProjectService:
    """The service with its repositories on `db` (requests, the CLI and jobs alike).

    `cache` is required so no code path can change a project without invalidating what
    the service caches: requests pass the app's (`Resources.cache`), tools outside the
    service `Cache.disabled()`. `owned`: the collections a purge empties of the project
    (`catalogue.PURGED`). `on_purge`: what else a purge removes (media files).
    """
    return ProjectService(
        ProjectRepository(db),
        MemberRepository(db),
        AuditRepository(db),
        unit,
        cache,
        owned=owned,
        on_purge=on_purge,
    )
