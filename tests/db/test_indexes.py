"""The index catalogue: created idempotently, conflicts reported, queries backed."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import ASCENDING, MongoClient
from pymongo.errors import DuplicateKeyError
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from snipix.app import create_app
from snipix.db.client import Database
from snipix.db.indexes import (
    IndexConflict,
    IndexSpec,
    catalogue,
    ensure_catalogue,
    ensure_indexes,
    list_indexes,
    matches,
)
from snipix.settings import Settings
from tests.support import running_app


@pytest.fixture
def database_name(empty_database_name: str) -> str:
    """A database nothing has touched: these tests are about creating the catalogue."""
    return empty_database_name


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


async def test_versions_are_unique_by_id_and_keys_are_found_by_project(
    db: Database, settings: Settings, mongo: MongoClient[dict[str, Any]]
) -> None:
    """A second revision with the same (project, version) is refused by its `_id`; the
    retired unique index on (project, key) is replaced by a plain one of the same fields."""
    database = mongo[settings.database_name]
    database["timeline_revisions"].create_index(
        [("projectId", 1), ("idempotencyKey", 1)], name="project_idempotency_key", unique=True
    )
    await ensure_catalogue(db, settings)
    revisions = database["timeline_revisions"]
    revisions.insert_one({"_id": "p1:1", "projectId": "p1", "version": 1})
    with pytest.raises(DuplicateKeyError):
        revisions.insert_one({"_id": "p1:1", "projectId": "p1", "version": 1})
    indexes = revisions.index_information()
    assert "project_idempotency_key" not in indexes
    assert indexes["by_key"]["key"] == [("projectId", 1), ("idempotencyKey", 1)]
    assert not indexes["by_key"].get("unique")


class CommandNames(CommandListener):
    """The name of every command the app sends."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


async def test_a_start_up_on_a_database_with_its_catalogue_builds_nothing(
    settings: Settings, mongo: MongoClient[dict[str, Any]]
) -> None:
    """The first start-up creates the catalogue; the next ones only read it. An index
    removed meanwhile is rebuilt by the next start-up (the check reads, it is not a flag)."""
    first = CommandNames()
    async with running_app(create_app(settings, command_listeners=[first])):
        pass
    assert "createIndexes" in first.names

    again = CommandNames()
    async with running_app(create_app(settings, command_listeners=[again])):
        pass
    assert "createIndexes" not in again.names
    assert "listIndexes" in again.names

    mongo[settings.database_name]["projects"].drop_index("active_by_updated")
    after_drop = CommandNames()
    async with running_app(create_app(settings, command_listeners=[after_drop])):
        pass
    assert after_drop.names.count("createIndexes") == 1
    assert "active_by_updated" in mongo[settings.database_name]["projects"].index_information()


TEXT = IndexSpec(
    "projects",
    "text_name_description",
    [("name", "text"), ("description", "text")],
    {"weights": {"name": 3, "description": 1}},
)
# How MongoDB lists that index (the embedded engine lists the key as given).
MONGODB_TEXT_LISTING: dict[str, Any] = {
    "v": 2,
    "key": {"_fts": "text", "_ftsx": 1},
    "name": "text_name_description",
    "weights": {"description": 1, "name": 3},
    "default_language": "english",
    "language_override": "language",
    "textIndexVersion": 3,
}
PLAIN = IndexSpec("projects", "by_owner", [("userId", 1), ("createdAt", -1)])
PLAIN_LISTING: dict[str, Any] = {"v": 2, "key": {"userId": 1, "createdAt": -1}, "name": "by_owner"}


@pytest.mark.parametrize(
    ("spec", "listed", "expected"),
    [
        pytest.param(TEXT, MONGODB_TEXT_LISTING, True, id="mongodb-text-form"),
        pytest.param(
            TEXT,
            MONGODB_TEXT_LISTING | {"weights": {"name": 1, "description": 1}},
            False,
            id="other-weights",
        ),
        pytest.param(
            TEXT, MONGODB_TEXT_LISTING | {"weights": {"name": 3}}, False, id="other-text-fields"
        ),
        pytest.param(PLAIN, PLAIN_LISTING, True, id="plain"),
        pytest.param(
            PLAIN, PLAIN_LISTING | {"unique": False}, True, id="engine-lists-unique-false"
        ),
        pytest.param(PLAIN, PLAIN_LISTING | {"unique": True}, False, id="unique"),
        pytest.param(PLAIN, PLAIN_LISTING | {"sparse": True}, False, id="unknown-option"),
        pytest.param(
            PLAIN, PLAIN_LISTING | {"key": {"createdAt": -1, "userId": 1}}, False, id="key-order"
        ),
        pytest.param(
            PLAIN, PLAIN_LISTING | {"key": {"userId": 1, "createdAt": 1}}, False, id="direction"
        ),
        pytest.param(PLAIN, PLAIN_LISTING | {"name": "other"}, False, id="name"),
        pytest.param(
            IndexSpec("k", "ttl", [("at", 1)], {"expireAfterSeconds": 30}),
            {"key": {"at": 1}, "name": "ttl", "expireAfterSeconds": 60},
            False,
            id="ttl-changed",
        ),
    ],
)
def test_a_listed_index_matches_only_its_exact_definition(
    spec: IndexSpec, listed: dict[str, Any], expected: bool
) -> None:
    """A mismatch sends the create command (the server then builds it or reports the
    conflict), so only an exact definition may skip it."""
    assert matches(spec, listed) is expected
