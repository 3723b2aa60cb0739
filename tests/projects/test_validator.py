"""The database itself refuses a malformed project, whoever writes it (the `$jsonSchema`
validator installed by the first migration)."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import OperationFailure, WriteError
from structlog.testing import capture_logs

from snipix.catalogue import MIGRATIONS
from snipix.clock import utc_now_ms
from snipix.db.client import Database
from snipix.db.indexes import ensure_catalogue
from snipix.db.migrations import MigrationRunner
from snipix.projects.validator import PROJECT_SCHEMA
from snipix.settings import Settings


@pytest.fixture
def database_name(empty_database_name: str) -> str:
    """A database nothing has touched: these tests are about what the first migration does."""
    return empty_database_name


MIGRATION_ID = "0001_projects_validator"
# A fresh database applies every migration, the validator first.
ALL_MIGRATIONS = [migration.id for migration in MIGRATIONS]
# MongoDB's DocumentValidationFailure.
DOCUMENT_VALIDATION_FAILURE = 121


def valid_project(project_id: str = "p1", **changes: Any) -> dict[str, Any]:
    now = utc_now_ms()
    doc: dict[str, Any] = {
        "_id": project_id,
        "userId": "editor-1",
        "name": "Wedding cut",
        "description": "",
        "status": "draft",
        "tags": [],
        "media": None,
        "createdAt": now,
        "updatedAt": now,
        "version": 1,
        "isDeleted": False,
        "deletedAt": None,
    }
    doc.update(changes)
    return doc


def projects(mongo: MongoClient[dict[str, Any]], settings: Settings) -> Collection[dict[str, Any]]:
    return mongo[settings.database_name]["projects"]


def collection_options(mongo: MongoClient[dict[str, Any]], settings: Settings) -> dict[str, Any]:
    found = list(mongo[settings.database_name].list_collections(filter={"name": "projects"}))
    assert len(found) == 1
    return dict(found[0].get("options", {}))


async def migrate(db: Database, settings: Settings) -> None:
    assert await MigrationRunner(db, MIGRATIONS).migrate() == ALL_MIGRATIONS
    assert ALL_MIGRATIONS[0] == MIGRATION_ID
    await ensure_catalogue(db, settings)


def assert_rejected(collection: Collection[dict[str, Any]], doc: dict[str, Any]) -> None:
    with pytest.raises(WriteError) as raised:
        collection.insert_one(doc)
    assert raised.value.code == DOCUMENT_VALIDATION_FAILURE
    assert collection.find_one({"_id": doc["_id"]}) is None


async def test_the_migration_creates_projects_with_the_validator(
    db: Database, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """A fresh database gets `projects` with the strict, erroring `$jsonSchema`."""
    await migrate(db, settings)
    options = collection_options(mongo, settings)
    assert options["validator"] == {"$jsonSchema": PROJECT_SCHEMA}
    assert options["validationLevel"] == "strict"
    assert options["validationAction"] == "error"


async def test_a_valid_project_is_accepted(
    db: Database, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """A document shaped like the service's own is stored as is."""
    await migrate(db, settings)
    doc = valid_project(tags=["client"], media={"durationSec": 93.5}, version=3)
    projects(mongo, settings).insert_one(doc)
    assert projects(mongo, settings).find_one({"_id": "p1"}) == doc
    deleted = valid_project("p2", isDeleted=True, deletedAt=utc_now_ms(), status="archived")
    projects(mongo, settings).insert_one(deleted)
    assert projects(mongo, settings).count_documents({}) == 2


@pytest.mark.parametrize(
    ("what", "doc"),
    [
        ("missing userId", {k: v for k, v in valid_project().items() if k != "userId"}),
        ("201-character name", valid_project(name="x" * 201)),
        ("unknown status", valid_project(status="published")),
        ("non-integer version", valid_project(version="1")),
        ("fractional version", valid_project(version=1.5)),
        ("version 0", valid_project(version=0)),
        ("string createdAt", valid_project(createdAt="2024-01-01T00:00:00Z")),
        ("non-boolean isDeleted", valid_project(isDeleted="no")),
        ("empty tag", valid_project(tags=[""])),
    ],
)
async def test_a_malformed_project_is_refused_by_the_database(
    db: Database,
    mongo: MongoClient[dict[str, Any]],
    settings: Settings,
    what: str,
    doc: dict[str, Any],
) -> None:
    """A writer bypassing the service cannot store a project the API could not read."""
    await migrate(db, settings)
    assert_rejected(projects(mongo, settings), doc)


async def test_an_update_that_breaks_the_schema_is_refused(
    db: Database, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """Changing a stored project into a malformed one fails and leaves it unchanged."""
    await migrate(db, settings)
    collection = projects(mongo, settings)
    doc = valid_project()
    collection.insert_one(doc)
    with pytest.raises(WriteError) as raised:
        collection.update_one({"_id": "p1"}, {"$set": {"status": "published"}})
    assert raised.value.code == DOCUMENT_VALIDATION_FAILURE
    assert collection.find_one({"_id": "p1"}) == doc


async def test_an_existing_empty_collection_gets_the_validator(
    db: Database, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """`projects` created before the migration (by an index) still ends up validated."""
    collection = projects(mongo, settings)
    collection.create_index("name", name="early_index")
    assert "validator" not in collection_options(mongo, settings)

    await migrate(db, settings)

    assert collection_options(mongo, settings)["validator"] == {"$jsonSchema": PROJECT_SCHEMA}
    assert_rejected(collection, valid_project(status="published"))
    collection.insert_one(valid_project())
    assert collection.count_documents({}) == 1
    # Start-up rebuilds the catalogue after the migration.
    names = {index["name"] for index in collection.list_indexes()}
    assert {"deleted_at", "active_by_updated", "text_name_description"} <= names


async def test_an_existing_collection_with_projects_keeps_them(
    db: Database, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """Projects stored before the validator existed survive the migration, which completes.

    Where the server has `collMod` the validator is attached to the collection; the
    embedded engine has none, so there the collection keeps working without it.
    """
    collection = projects(mongo, settings)
    legacy = [valid_project("p1"), valid_project("p2", status="published")]
    collection.insert_many(legacy)

    with capture_logs() as logs:
        await migrate(db, settings)

    assert list(collection.find({}).sort("_id", 1)) == legacy
    status = await MigrationRunner(db, MIGRATIONS).status()
    assert status.applied == ALL_MIGRATIONS
    assert status.pending == []
    notices = [log for log in logs if log["event"] == "project validator not installed"]

    if supports_coll_mod(mongo, settings):
        assert collection_options(mongo, settings)["validator"] == {"$jsonSchema": PROJECT_SCHEMA}
        assert_rejected(collection, valid_project("p3", status="published"))
        assert notices == []
    else:
        assert "validator" not in collection_options(mongo, settings)
        assert len(notices) == 1
        assert notices[0]["log_level"] == "warning"
        assert "collMod" in notices[0]["reason"]


def supports_coll_mod(mongo: MongoClient[dict[str, Any]], settings: Settings) -> bool:
    scratch = mongo[settings.database_name]
    scratch.create_collection("coll_mod_probe")
    try:
        scratch.command({"collMod": "coll_mod_probe", "validationLevel": "strict"})
    except OperationFailure:
        return False
    finally:
        scratch.drop_collection("coll_mod_probe")
    return True
