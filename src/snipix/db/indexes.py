"""Every index of the data model, in one catalogue, created idempotently.

One place to review "is every query backed by an index?" (see docs/architecture.md). The
names are fixed so a query can `hint` one and an explain test can name it. Creating an
index that already exists with the same definition is a no-op, so start-up and
`snipix db indexes` can run any number of times; an index whose definition changed under
the same name is reported (it needs a deliberate drop and rebuild, never a silent one).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import ASCENDING, DESCENDING, TEXT, IndexModel
from pymongo.errors import OperationFailure

from snipix.db.client import Database
from snipix.settings import Settings

# MongoDB's codes for "an index with this name/keys exists with other options".
_INDEX_CONFLICT_CODES = {85, 86}

KeySpec = Sequence[tuple[str, Any]]


class IndexConflict(Exception):
    """An existing index has the catalogue's name but a different definition."""


@dataclass(frozen=True, slots=True)
class IndexSpec:
    collection: str
    name: str
    keys: KeySpec
    options: dict[str, Any] = field(default_factory=dict)

    def model(self) -> IndexModel:
        return IndexModel(list(self.keys), name=self.name, **self.options)


_ACTIVE = {"partialFilterExpression": {"isDeleted": False}}
_NEWEST = [("at", DESCENDING), ("_id", DESCENDING)]
# Versioned documents (project versions, timeline revisions and snapshots) are unique per
# (projectId, version) through their `_id`, `<projectId>:<version>`; this index serves the
# range reads. A unique compound index would only repeat the guarantee, and on the
# embedded engine it costs a scan of the collection per insert, growing with the
# collection (docs/decisions.md).
_BY_VERSION = [("projectId", ASCENDING), ("version", DESCENDING)]

# Indexes an earlier catalogue created and a later one replaced: dropped when present, so
# a changed definition gets a new name instead of a conflict at start-up.
RETIRED: tuple[tuple[str, str], ...] = (
    ("audit_log", "entity_at"),
    ("audit_log", "user_at"),
    ("projects", "retention"),
    ("project_versions", "project_version"),
    ("timeline_revisions", "project_version"),
    ("timeline_snapshots", "project_version"),
    # Autosave idempotency keys live in `idempotency_keys`, unique by `_id`.
    ("timeline_revisions", "project_idempotency_key"),
    # A session's `_id` is `<userId>:<projectId>`: it carries the uniqueness; the recent
    # list's index gained `_id` for keyset pages.
    ("editing_sessions", "user_project"),
    ("editing_sessions", "user_recent"),
    ("transcript_segments", "project_start"),
    # Unique by `_id` already; replaced by the non-unique `by_project`.
    ("timelines", "project"),
    ("transcripts", "project"),
)


def catalogue(*, audit_retention_days: int = 365) -> tuple[IndexSpec, ...]:
    """The indexes the data model in docs/architecture.md relies on."""
    return (
        # projects: the owner's active list in either sort order (partial: deleted rows are
        # not in the index at all), ranked text search, and the retention sweep.
        IndexSpec(
            "projects",
            "active_by_updated",
            [("userId", ASCENDING), ("updatedAt", DESCENDING), ("_id", DESCENDING)],
            _ACTIVE,
        ),
        IndexSpec(
            "projects",
            "active_by_created",
            [("userId", ASCENDING), ("createdAt", DESCENDING), ("_id", DESCENDING)],
            _ACTIVE,
        ),
        IndexSpec(
            "projects",
            "text_name_description",
            [("name", TEXT), ("description", TEXT)],
            {"weights": {"name": 3, "description": 1}},
        ),
        IndexSpec(
            "projects",
            "deleted_at",
            [("isDeleted", ASCENDING), ("deletedAt", ASCENDING), ("_id", ASCENDING)],
        ),
        IndexSpec("project_versions", "by_version", _BY_VERSION),
        # Heads and transcript headers are unique per project by `_id` (the project's id);
        # these serve the purge cascade. Not unique: on the embedded engine a unique index
        # costs a scan of the collection on every write (docs/performance.md).
        IndexSpec("timelines", "by_project", [("projectId", ASCENDING)]),
        IndexSpec("timeline_revisions", "by_version", _BY_VERSION),
        IndexSpec("timeline_snapshots", "by_version", _BY_VERSION),
        # Kept at least 24 h as the API promises (48 h), then removed by the server.
        IndexSpec(
            "idempotency_keys", "expire_at", [("expiresAt", ASCENDING)], {"expireAfterSeconds": 0}
        ),
        IndexSpec("transcripts", "by_project", [("projectId", ASCENDING)]),
        # Buckets of one upload ("generation") in time order: window reads and paging.
        IndexSpec(
            "transcript_segments",
            "project_generation_start",
            [("projectId", ASCENDING), ("generation", ASCENDING), ("start", ASCENDING)],
        ),
        # The bucket holding a segment, for edits by segment id (multikey).
        IndexSpec(
            "transcript_segments",
            "project_segment",
            [("projectId", ASCENDING), ("segments.id", ASCENDING)],
        ),
        IndexSpec("transcript_segments", "text", [("text", TEXT)]),
        # The owner's buckets: a search across all of a user's transcripts is scored over
        # these only on the embedded engine (MongoDB answers `$text` from the text index).
        IndexSpec("transcript_segments", "by_user", [("userId", ASCENDING)]),
        # editing_sessions: unique per (user, project) by `_id` (`<userId>:<projectId>`);
        # the recent list is keyset-paged on (lastOpenedAt, _id).
        IndexSpec(
            "editing_sessions",
            "user_recent_id",
            [("userId", ASCENDING), ("lastOpenedAt", DESCENDING), ("_id", DESCENDING)],
        ),
        # Purging a project removes its sessions of every user.
        IndexSpec("editing_sessions", "project", [("projectId", ASCENDING)]),
        # `_id` completes each key so a page boundary (at, _id) is one index position: the
        # newest-first sort is read from the index, never sorted in memory.
        IndexSpec("audit_log", "entity_at_id", [("entityId", ASCENDING), *_NEWEST]),
        IndexSpec("audit_log", "user_at_id", [("userId", ASCENDING), *_NEWEST]),
        IndexSpec("audit_log", "action_at_id", [("action", ASCENDING), *_NEWEST]),
        IndexSpec("audit_log", "at_id", _NEWEST),
        IndexSpec(
            "audit_log",
            "expire_at",
            [("at", ASCENDING)],
            {"expireAfterSeconds": audit_retention_days * 86_400},
        ),
        # Accounts: one account per normalised (trimmed, lower-cased) email. A
        # plain unique index: on the embedded engine its check grows with the number of
        # users, and sign-ups are rare.
        IndexSpec("users", "email_unique", [("email", ASCENDING)], {"unique": True}),
        # Refresh tokens (`_id` = SHA-256 of the token) and their families (`_id` = family
        # id) are read by `_id` only; the server deletes them once expired.
        IndexSpec(
            "refresh_tokens", "expire_at", [("expiresAt", ASCENDING)], {"expireAfterSeconds": 0}
        ),
        IndexSpec(
            "refresh_families", "expire_at", [("expiresAt", ASCENDING)], {"expireAfterSeconds": 0}
        ),
    )


async def ensure_indexes(db: Database, specs: Iterable[IndexSpec]) -> list[str]:
    """Create every index in `specs` (no-op for existing identical ones); return their names.

    Raises `IndexConflict` naming the collection and index when a definition changed.
    """
    by_collection: dict[str, list[IndexSpec]] = {}
    for spec in specs:
        by_collection.setdefault(spec.collection, []).append(spec)
    created: list[str] = []
    for collection, group in by_collection.items():
        try:
            names = await db[collection].create_indexes([spec.model() for spec in group])
        except OperationFailure as error:
            if error.code in _INDEX_CONFLICT_CODES:
                raise IndexConflict(
                    f"an index on {collection} conflicts with the catalogue "
                    f"({error.details.get('errmsg') if error.details else error}); "
                    "drop it so it can be rebuilt with the new definition"
                ) from None
            raise
        created += [f"{collection}.{name}" for name in names]
    return created


async def drop_retired(db: Database, retired: Iterable[tuple[str, str]] = RETIRED) -> list[str]:
    """Drop indexes the catalogue replaced; return the ones that existed."""
    dropped: list[str] = []
    existing = set(await db.list_collection_names())
    for collection, name in retired:
        if collection not in existing:
            continue
        names = {index["name"] async for index in await db[collection].list_indexes()}
        if name in names:
            await db[collection].drop_index(name)
            dropped.append(f"{collection}.{name}")
    return dropped


async def ensure_catalogue(db: Database, settings: Settings) -> list[str]:
    """The catalogue as configured (audit retention), created idempotently."""
    await drop_retired(db)
    return await ensure_indexes(db, catalogue(audit_retention_days=settings.audit_retention_days))


async def list_indexes(db: Database) -> dict[str, list[dict[str, Any]]]:
    """Every index of every collection in the database, by collection."""
    result: dict[str, list[dict[str, Any]]] = {}
    for name in sorted(await db.list_collection_names()):
        cursor = await db[name].list_indexes()
        result[name] = [dict(index) async for index in cursor]
    return result
