"""Every index of the data model, in one catalogue, created idempotently.

One place to review "is every query backed by an index?" (see docs/architecture.md). The
names are fixed so a query can `hint` one and an explain test can name it. Creating an
index that already exists with the same definition is a no-op, so start-up and
`snipix db indexes` can run any number of times; an index whose definition changed under
the same name is reported (it needs a deliberate drop and rebuild, never a silent one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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
    # A unique compound index, replaced by the non-unique `by_key`.
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
        # The revision an autosave's Idempotency-Key made, found when the key is repeated.
        # Not unique: one change commits a project's next version, and a key is searched
        # for before each commit attempt (timelines/service.py, `_change`).
        IndexSpec(
            "timeline_revisions",
            "by_key",
            [("projectId", ASCENDING), ("idempotencyKey", ASCENDING)],
        ),
        IndexSpec("timeline_snapshots", "by_version", _BY_VERSION),
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
        # Transcription jobs: one active job per project (`activeKey` is the project's id
        # while queued or running, the job's own id after); the runners' claim reads the
        # oldest waiting job, or a running one whose lease expired; the purge deletes a
        # project's jobs.
        # Sparse: every job has the key; a document without it is not a job's.
        IndexSpec(
            "jobs", "active_key", [("activeKey", ASCENDING)], {"unique": True, "sparse": True}
        ),
        IndexSpec("jobs", "state_created", [("state", ASCENDING), ("createdAt", ASCENDING)]),
        IndexSpec("jobs", "state_lease", [("state", ASCENDING), ("leaseExpiresAt", ASCENDING)]),
        IndexSpec("jobs", "by_project", [("projectId", ASCENDING)]),
        # editing_sessions: unique per (user, project) by `_id` (`<userId>:<projectId>`);
        # the recent list is keyset-paged on (lastOpenedAt, _id).
        IndexSpec(
            "editing_sessions",
            "user_recent_id",
            [("userId", ASCENDING), ("lastOpenedAt", DESCENDING), ("_id", DESCENDING)],
        ),
        # Purging a project removes its sessions of every user.
        IndexSpec("editing_sessions", "project", [("projectId", ASCENDING)]),
        # project_members: `_id` is `<projectId>:<userId>` (one row per member, unique
        # everywhere; a unique compound index costs the embedded engine a scan per insert);
        # a project's members and the purge's delete; the projects shared with a user (of
        # one role) for the list.
        IndexSpec(
            "project_members", "project_user", [("projectId", ASCENDING), ("userId", ASCENDING)]
        ),
        IndexSpec(
            "project_members",
            "user_role",
            [("userId", ASCENDING), ("role", ASCENDING), ("projectId", ASCENDING)],
        ),
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
        # Every session of one user, ended at once (sign out everywhere, a password change,
        # an account disabled or deleted).
        IndexSpec("refresh_families", "user", [("userId", ASCENDING)]),
        # Cache invalidations Redis did not take (`_id` = the cache key): each replica's
        # recovery loop reads those recorded since its last look, in `at` order; the
        # server removes them once no entry from before them can be fresh.
        IndexSpec("cache_invalidations", "at_id", [("at", ASCENDING), ("_id", ASCENDING)]),
        IndexSpec(
            "cache_invalidations",
            "expire_at",
            [("expiresAt", ASCENDING)],
            {"expireAfterSeconds": 0},
        ),
        # Verification and reset tokens (`_id` = SHA-256 of the token), used by `_id`; the
        # server deletes them once expired; those of one user and purpose retired at once.
        IndexSpec(
            "email_tokens", "expire_at", [("expiresAt", ASCENDING)], {"expireAfterSeconds": 0}
        ),
        IndexSpec("email_tokens", "user_purpose", [("userId", ASCENDING), ("purpose", ASCENDING)]),
        # Sign-in lockouts (`_id` = "account:<hash>" or "ip:<address>"), read by `_id`.
        IndexSpec(
            "login_lockouts", "expire_at", [("expiresAt", ASCENDING)], {"expireAfterSeconds": 0}
        ),
    )


# What a listed index may carry besides its definition: the format version and the
# namespace; a text index also its language fields (this catalogue sets none of them).
_DESCRIPTIVE = {"v", "ns", "name", "key"}
_TEXT_DESCRIPTIVE = {"default_language", "language_override", "textIndexVersion", "weights"}
_TEXT_KEYS = {"_fts", "_ftsx"}


def matches(spec: IndexSpec, listed: Mapping[str, Any]) -> bool:
    """Whether a listed index is exactly `spec`: its name, keys and every defining option.

    Strict on purpose: an option this does not know is a mismatch, and a mismatch only
    sends the create command, whose answer (a no-op or a conflict) is the server's.
    """
    if listed.get("name") != spec.name:
        return False
    key = list(dict(listed.get("key", {})).items())
    options = dict(spec.options)
    text = [field for field, value in spec.keys if value == TEXT]
    descriptive = _DESCRIPTIVE
    if text:
        descriptive = _DESCRIPTIVE | _TEXT_DESCRIPTIVE
        # MongoDB lists the text part as `_fts`/`_ftsx` with the fields in `weights`;
        # the embedded engine lists the key as given. A field's weight defaults to 1.
        weights = dict(listed.get("weights") or {})
        if any(field in _TEXT_KEYS for field, _ in key):
            key = [(field, value) for field, value in key if field not in _TEXT_KEYS]
            if set(weights) != set(text):
                return False
            spec_key = [(field, value) for field, value in spec.keys if value != TEXT]
        else:
            spec_key = list(spec.keys)
        wanted = dict.fromkeys(text, 1) | dict(options.pop("weights", {}))
        if {field: weights.get(field, 1) for field in text} != wanted:
            return False
    else:
        spec_key = list(spec.keys)
    if key != spec_key:
        return False
    for option in (set(listed) - descriptive) | set(options):
        have, want = listed.get(option), options.get(option)
        # The embedded engine lists `unique: False`; MongoDB omits it.
        if have != want and not (option == "unique" and not have and not want):
            return False
    return True


async def _listed(db: Database) -> dict[str, dict[str, dict[str, Any]]]:
    """`list_indexes`, by collection and index name, as plain dicts."""
    return {
        collection: {index["name"]: _plain(index) for index in indexes}
        for collection, indexes in (await list_indexes(db)).items()
    }


def _plain(value: Any) -> Any:
    """A listed index as plain dicts (PyMongo lists SON), so comparisons ignore the type."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


async def ensure_indexes(db: Database, specs: Iterable[IndexSpec]) -> list[str]:
    """Create every index in `specs` that is not already in place; return all their names.

    A collection whose listed indexes already match its specs exactly (`matches`) gets no
    create command: start-up on a database with its catalogue in place only reads, where
    the embedded engine otherwise spends as long on a no-op create as on a build. Raises
    `IndexConflict` naming the collection and index when a definition changed.
    """
    return await _ensure(db, specs, await _listed(db))


async def _ensure(
    db: Database, specs: Iterable[IndexSpec], listed: dict[str, dict[str, dict[str, Any]]]
) -> list[str]:
    by_collection: dict[str, list[IndexSpec]] = {}
    for spec in specs:
        by_collection.setdefault(spec.collection, []).append(spec)
    ensured: list[str] = []
    for collection, group in by_collection.items():
        present = listed.get(collection, {})
        if all(spec.name in present and matches(spec, present[spec.name]) for spec in group):
            ensured += [f"{collection}.{spec.name}" for spec in group]
            continue
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
        ensured += [f"{collection}.{name}" for name in names]
    return ensured


async def drop_retired(db: Database, retired: Iterable[tuple[str, str]] = RETIRED) -> list[str]:
    """Drop indexes the catalogue replaced; return the ones that existed."""
    return await _drop(db, retired, await _listed(db))


async def _drop(
    db: Database,
    retired: Iterable[tuple[str, str]],
    listed: dict[str, dict[str, dict[str, Any]]],
) -> list[str]:
    dropped: list[str] = []
    for collection, name in retired:
        if listed.get(collection, {}).pop(name, None) is not None:
            await db[collection].drop_index(name)
            dropped.append(f"{collection}.{name}")
    return dropped


async def ensure_catalogue(db: Database, settings: Settings) -> list[str]:
    """The catalogue as configured (audit retention), created where not already in place.

    One listing of the database serves both steps: start-up on a database whose catalogue
    is in place costs a read per collection.
    """
    listed = await _listed(db)
    await _drop(db, RETIRED, listed)
    specs = catalogue(audit_retention_days=settings.audit_retention_days)
    return await _ensure(db, specs, listed)


async def list_indexes(db: Database) -> dict[str, list[dict[str, Any]]]:
    """Every index of every collection in the database, by collection."""
    result: dict[str, list[dict[str, Any]]] = {}
    for name in sorted(await db.list_collection_names()):
        cursor = await db[name].list_indexes()
        result[name] = [dict(index) async for index in cursor]
    return result
