"""The harness's reusable databases: the next test gets no document and no changed schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pymongo import MongoClient
from pymongo.database import Database

from tests.databases import DatabasePool
from tests.projects.test_validator import valid_project


def test_a_database_comes_back_empty_with_its_schema(
    database_pool: DatabasePool, mongo: MongoClient[dict[str, Any]]
) -> None:
    name = database_pool.take()
    mongo[name]["projects"].insert_one(valid_project("p1"))
    mongo[name]["audit_log"].insert_one({"_id": "a1"})
    database_pool.give_back(name)
    assert database_pool.take() == name
    assert mongo[name]["projects"].count_documents({}) == 0
    assert mongo[name]["audit_log"].count_documents({}) == 0
    assert "text_name_description" in mongo[name]["projects"].index_information()
    assert mongo[name]["migrations"].count_documents({}) >= 1
    database_pool.give_back(name)


def test_a_database_whose_schema_changed_is_dropped_not_reused(
    database_pool: DatabasePool, mongo: MongoClient[dict[str, Any]]
) -> None:
    changes: list[Callable[[Database[dict[str, Any]]], object]] = [
        lambda db: db["projects"].create_index("status", name="extra"),
        lambda db: db["projects"].drop_index("deleted_at"),
        lambda db: db.create_collection("extra"),
        lambda db: db["migrations"].delete_many({}),
    ]
    for change in changes:
        name = database_pool.take()
        change(mongo[name])
        database_pool.give_back(name)
        assert name not in mongo.list_database_names()
        assert name not in database_pool.free
