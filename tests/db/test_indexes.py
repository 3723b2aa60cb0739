"""The index catalogue: created idempotently, conflicts reported, queries backed."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import ASCENDING, MongoClient
from pymongo.errors import DuplicateKeyError

from snipix.db.client import Database
from snipix.db.indexes import (
    IndexConflict,
    IndexSpec,
    catalogue,
    ensure_catalogue,
    ensure_indexes,
    list_indexes,
)
from snipix.settings import Settings


def test_catalogue_names_are_unique_per_collection() -> None:
    seen = [(spec.collection, spec.name) for spec in catalogue()]
    assert len(seen) == len(set(seen))


async def test_ensure_indexes_is_idempotent(
    db: Database, settings: Settings, mongo: MongoClient[dict[str, Any]]
) -> None:
    """Running it again (every start-up, `snipix db indexes`) changes nothing."""
    first = await ensure_indexes(db, catalogue())
    before = await list_indexes(db)
    second = await ensure_indexes(db, catalogue())
    after = await list_indexes(db)
    assert first == second
    assert before == after
    assert len(first) == len(catalogue())
    sessions = mongo[settings.database_name]["editing_sessions"].index_information()
    assert sessions["user_recent_id"]["key"] == [("userId", 1), ("lastOpenedAt", -1), ("_id", -1)]


async def test_audit_retention_follows_the_setting(
    db: Database, settings: Settings, mongo: MongoClient[dict[str, Any]]
) -> None:
    await ensure_catalogue(db, settings.model_copy(update={"audit_retention_days": 30}))
    ttl = mongo[settings.database_name]["audit_log"].index_information()["expire_at"]
    assert ttl["expireAfterSeconds"] == 30 * 86_400


async def test_changed_definition_is_reported_not_ignored(db: Database) -> None:
    """An index whose definition changed under the same name is a clear error."""
    original = IndexSpec("things", "by_owner", [("owner", ASCENDING)])
    changed = IndexSpec("things", "by_owner", [("owner", ASCENDING)], {"unique": True})
    await ensure_indexes(db, [original])
    with pytest.raises(IndexConflict) as conflict:
        await ensure_indexes(db, [changed])
    assert "things" in str(conflict.value)
    assert "drop it" in str(conflict.value)


async def test_versions_are_unique_by_id_and_idempotency_keys_expire(
    db: Database, settings: Settings, mongo: MongoClient[dict[str, Any]]
) -> None:
    """A second revision with the same (project, version) is refused by its `_id`; the
    retired unique index is gone; idempotency keys carry a TTL."""
    database = mongo[settings.database_name]
    database["timeline_revisions"].create_index(
        [("projectId", 1), ("idempotencyKey", 1)], name="project_idempotency_key"
    )
    await ensure_catalogue(db, settings)
    revisions = database["timeline_revisions"]
    revisions.insert_one({"_id": "p1:1", "projectId": "p1", "version": 1})
    with pytest.raises(DuplicateKeyError):
        revisions.insert_one({"_id": "p1:1", "projectId": "p1", "version": 1})
    assert "project_idempotency_key" not in revisions.index_information()
    keys = database["idempotency_keys"].index_information()
    assert keys["expire_at"]["expireAfterSeconds"] == 0
