"""What the database holds for this service, in one place: the schema migrations and the
registry of collections.

Each migration belongs to its domain (the projects validator to `projects`); the runner
(`snipix.db.migrations`) knows only how to apply a list. Every entry point that migrates
or checks the schema (the app's lifespan, the CLI, backup and restore, the legacy import)
takes the list from here, so they can never disagree about what "up to date" means.

The registry (`COLLECTIONS`) says the same of the collections: which exist, which domain
owns each, by which key a user's or a project's documents are found, and whether a backup
holds them. Backup's per-user selection, the purge of a project and the legacy import and
export read it, so a new collection is added once and cannot be forgotten by one of them
(`tests/test_catalogue.py` fails for a collection of the index catalogue missing here).
Each domain keeps its collection's name in its repository; the registry refers to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from snipix.accounts.email_tokens import EMAIL_TOKENS
from snipix.accounts.repository import LOGIN_LOCKOUTS, REFRESH_FAMILIES, REFRESH_TOKENS, USERS
from snipix.audit.repository import COLLECTION as AUDIT
from snipix.cache.journal import COLLECTION as CACHE_INVALIDATIONS
from snipix.db.leases import COLLECTION as LEASES
from snipix.db.migrations import COLLECTION as MIGRATIONS_COLLECTION
from snipix.db.migrations import LOCK_ID, Migration
from snipix.projects.members import BY_PROJECT_INDEX as MEMBERS_BY_PROJECT
from snipix.projects.members import MEMBERS
from snipix.projects.repository import PROJECTS, VERSIONS
from snipix.projects.validator import install_project_validator
from snipix.sessions.repository import SESSIONS
from snipix.timelines.migrations import drop_retired_keys, rename_compat_blocks
from snipix.timelines.repository import HEADS, REVISIONS, SNAPSHOTS
from snipix.transcription.repository import JOBS
from snipix.transcripts.repository import BUCKETS, HEADERS

# Oldest first. Ids sort in application order ("0001_...").
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "0001_projects_validator",
        "server-side $jsonSchema validator on projects",
        install_project_validator,
    ),
    Migration(
        "0002_timeline_compat_blocks",
        "tracks' and clips' `legacy` block of the original web app's fields renamed `compat`",
        rename_compat_blocks,
    ),
    Migration(
        "0003_timeline_keys_in_revisions",
        "autosaves' Idempotency-Keys kept with their revisions; `idempotency_keys` dropped",
        drop_retired_keys,
    ),
)

# The field naming the project a document belongs to, in every collection a project owns.
PROJECT_ID: Final = "projectId"


class UserScope(StrEnum):
    """How a user's backup selects a collection's documents."""

    # Any of `user_keys` is the user's id.
    BY_USER = "by-user"
    # `project_key` is one of the user's projects (every user's documents in them).
    BY_PROJECT = "by-project"
    # Every document: the schema records say what the user's documents look like.
    WHOLE = "whole"
    # Not in a user's backup (accounts and sign-in state, not the user's work).
    NONE = "none"


@dataclass(frozen=True, slots=True)
class StoredCollection:
    """One collection: its owner, its keys, and what backup and purge do with it."""

    name: str
    # The package whose repository reads and writes it.
    domain: str
    user_scope: UserScope = UserScope.NONE
    # Fields holding the owning user's id; a document matches on any of them.
    user_keys: tuple[str, ...] = ()
    # The field holding the project's id: `_id` for projects, `projectId` for what a
    # project owns.
    project_key: str | None = None
    # The catalogue index a delete by `project_key` hints; set for what a purge deletes.
    project_index: str | None = None
    backed_up: bool = True
    # One document never backed up (the migration lock: it means nothing elsewhere).
    excluded_id: str | None = None

    @property
    def owned_by_project(self) -> bool:
        """Deleted with its project by a purge."""
        return self.project_key == PROJECT_ID and self.project_index is not None

    def user_query(self, user_id: str, project_ids: Sequence[str]) -> dict[str, Any] | None:
        """The query selecting one user's documents (`project_ids`: the user's projects);
        None when a user's backup does not hold this collection."""
        match self.user_scope:
            case UserScope.BY_USER:
                return self.owner_query(user_id)
            case UserScope.BY_PROJECT:
                return {str(self.project_key): {"$in": list(project_ids)}}
            case UserScope.WHOLE:
                return {}
            case UserScope.NONE:
                return None

    def owner_query(self, user_id: str) -> dict[str, Any]:
        """The query selecting the documents whose `user_keys` name `user_id`."""
        if not self.user_keys:
            raise ValueError(f"{self.name} has no user key")
        if len(self.user_keys) == 1:
            return {self.user_keys[0]: user_id}
        return {"$or": [{key: user_id} for key in self.user_keys]}

    def backup_query(self, query: dict[str, Any]) -> dict[str, Any]:
        """`query` without the document a backup never holds."""
        if self.excluded_id is None:
            return query
        return {**query, "_id": {"$ne": self.excluded_id}}


def _owned(name: str, domain: str, index: str) -> StoredCollection:
    return StoredCollection(
        name,
        domain,
        UserScope.BY_PROJECT,
        project_key=PROJECT_ID,
        project_index=index,
    )


# Every collection. A purge deletes what a project owns in this order (the project's own
# document last, so an interrupted purge leaves a soft-deleted project the next sweep
# finishes); a backup writes them sorted by name.
COLLECTIONS: Final[tuple[StoredCollection, ...]] = (
    StoredCollection(
        PROJECTS,
        "projects",
        UserScope.BY_USER,
        user_keys=("userId",),
        project_key="_id",
    ),
    _owned(SESSIONS, "sessions", "project"),
    _owned(BUCKETS, "transcripts", "project_generation_start"),
    _owned(HEADERS, "transcripts", "by_project"),
    _owned(SNAPSHOTS, "timelines", "by_version"),
    _owned(REVISIONS, "timelines", "by_version"),
    _owned(HEADS, "timelines", "by_project"),
    _owned(VERSIONS, "projects", "by_version"),
    # Who the project is shared with: a user's backup holds the shares of their projects.
    _owned(MEMBERS, "projects", MEMBERS_BY_PROJECT),
    # Operational state: a job is work in flight or its outcome, not the user's work (the
    # transcript it wrote is); purged with its project, never in a backup.
    StoredCollection(
        JOBS,
        "transcription",
        project_key=PROJECT_ID,
        project_index="by_project",
        backed_up=False,
    ),
    # An entry is the acting user's and the owner's of the entity it is about.
    StoredCollection(AUDIT, "audit", UserScope.BY_USER, user_keys=("userId", "ownerId")),
    StoredCollection(USERS, "accounts", user_keys=("_id",)),
    StoredCollection(REFRESH_TOKENS, "accounts", user_keys=("userId",)),
    StoredCollection(REFRESH_FAMILIES, "accounts", user_keys=("userId",)),
    StoredCollection(LOGIN_LOCKOUTS, "accounts"),
    # Ephemeral: verification and reset links live 48 hours at most, and a restored one
    # must not open an account again.
    StoredCollection(EMAIL_TOKENS, "accounts", user_keys=("userId",), backed_up=False),
    StoredCollection(MIGRATIONS_COLLECTION, "db", UserScope.WHOLE, excluded_id=LOCK_ID),
    # Ephemeral: job leases expire within minutes and mean nothing in another database.
    StoredCollection(LEASES, "db", backed_up=False),
    # Ephemeral: cache invalidations in flight, meaningless once Redis has them.
    StoredCollection(CACHE_INVALIDATIONS, "cache", backed_up=False),
)

BY_NAME: Final = {collection.name: collection for collection in COLLECTIONS}
# What a project owns in other domains, in purge order, each with its `projectId` index.
PROJECT_OWNED: Final = tuple(c for c in COLLECTIONS if c.owned_by_project)
# The same as (collection, index) pairs: what a purge deletes before the project itself.
PURGED: Final[tuple[tuple[str, str], ...]] = tuple(
    (c.name, c.project_index) for c in PROJECT_OWNED if c.project_index is not None
)
# Never in a backup.
NOT_BACKED_UP: Final = frozenset(c.name for c in COLLECTIONS if not c.backed_up)


def registered(name: str) -> StoredCollection:
    """The registry's entry for `name`; KeyError for a collection it does not know."""
    return BY_NAME[name]
