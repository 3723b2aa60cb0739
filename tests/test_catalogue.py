"""The registry of collections: complete, and consistent with the index catalogue.

Backup's per-user selection, the purge of a project and the legacy import read the
registry, so a collection missing from it would be left out of them silently; these
tests make that a failure instead.
"""

from __future__ import annotations

from snipix.accounts.email_tokens import EMAIL_TOKENS
from snipix.cache.journal import COLLECTION as CACHE_INVALIDATIONS
from snipix.catalogue import (
    BY_NAME,
    COLLECTIONS,
    NOT_BACKED_UP,
    PROJECT_ID,
    PROJECT_OWNED,
    PURGED,
    UserScope,
)
from snipix.db.indexes import RETIRED, catalogue
from snipix.db.leases import COLLECTION as LEASES
from snipix.db.migrations import COLLECTION as MIGRATIONS
from snipix.db.migrations import LOCK_ID
from snipix.legacy.report import COLLECTIONS as REPORTED
from snipix.legacy.repository import WRITE_ORDER
from snipix.projects.repository import PROJECTS
from snipix.transcription.repository import JOBS


def test_every_collection_of_the_index_catalogue_is_registered() -> None:
    """A new collection with an index is listed in the registry, so backup and purge know
    whether (and by which key) it belongs to a user or a project."""
    indexed = {spec.collection for spec in catalogue()} | {name for name, _ in RETIRED}

    missing = sorted(indexed - set(BY_NAME))

    assert missing == [], f"add {missing} to snipix.catalogue.COLLECTIONS"


def test_each_collection_is_registered_once() -> None:
    names = [collection.name for collection in COLLECTIONS]

    assert len(names) == len(set(names))


def test_what_a_purge_deletes_is_found_by_a_catalogue_index_on_the_project_key() -> None:
    """Each project-owned collection names an index of the catalogue whose first key is
    `projectId`: the purge's `hint` exists and serves its delete."""
    indexes = {(spec.collection, spec.name): spec for spec in catalogue()}

    for collection in PROJECT_OWNED:
        assert collection.project_index is not None
        spec = indexes.get((collection.name, collection.project_index))
        assert spec is not None, collection.name
        assert spec.keys[0][0] == PROJECT_ID, collection.name
    assert [name for name, _index in PURGED] == [c.name for c in PROJECT_OWNED]
    assert PROJECTS not in dict(PURGED)


def test_a_users_backup_selects_by_the_registered_keys() -> None:
    """The queries a user's backup sends, collection by collection."""
    queries = {
        collection.name: collection.user_query("u1", ["p1", "p2"]) for collection in COLLECTIONS
    }

    assert {name: query for name, query in queries.items() if query is not None} == {
        "projects": {"userId": "u1"},
        # Jobs are purged with their project but are no one's backup (operational state).
        **{name: {"projectId": {"$in": ["p1", "p2"]}} for name, _index in PURGED if name != JOBS},
        "audit_log": {"$or": [{"userId": "u1"}, {"ownerId": "u1"}]},
        "migrations": {},
    }
    assert BY_NAME[MIGRATIONS].backup_query({}) == {"_id": {"$ne": LOCK_ID}}
    assert BY_NAME[PROJECTS].user_scope is UserScope.BY_USER


def test_leases_cache_invalidations_email_links_and_jobs_are_never_backed_up() -> None:
    assert sorted(NOT_BACKED_UP) == sorted([LEASES, CACHE_INVALIDATIONS, EMAIL_TOKENS, JOBS])
    assert BY_NAME[JOBS].owned_by_project  # but purged with their project


def test_the_legacy_import_writes_and_counts_registered_collections() -> None:
    """The importer's write order and its report's counts name registered, backed-up
    collections, the project last (its document marks a project imported whole)."""
    for name in (*WRITE_ORDER, *REPORTED):
        assert name in BY_NAME, name
        assert BY_NAME[name].backed_up, name
    assert WRITE_ORDER[-1] == PROJECTS
