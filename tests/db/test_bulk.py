"""Bulk writes of documents that may be stored already: insert, then replace duplicates."""

from __future__ import annotations

from typing import Any

import bson
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient

from snipix.db.bulk import OnDuplicate, Write, insert_or_replace, raw_collection
from snipix.db.client import Database

Mongo = MongoClient[dict[str, Any]]


async def test_a_document_inserted_after_the_lookup_is_replaced(db: Database, mongo: Mongo) -> None:
    """A document seen as absent but inserted meanwhile is replaced by the backup's, not an
    error; the others of the batch are written too."""
    await db["things"].insert_one({"_id": "raced", "by": "someone else"})
    writes = [
        Write(name, RawBSONDocument(bson.encode({"_id": name, "by": "backup"})), stored=False)
        for name in ("first", "raced", "last")
    ]

    await insert_or_replace(raw_collection(db, "things"), writes, bypass_validation=True)

    stored = list(mongo[db.name]["things"].find().sort("_id", 1))
    assert stored == [
        {"_id": "first", "by": "backup"},
        {"_id": "last", "by": "backup"},
        {"_id": "raced", "by": "backup"},
    ]


async def test_kept_duplicates_stay_and_are_returned(db: Database, mongo: Mongo) -> None:
    """`OnDuplicate.KEEP`: the stored document stays as it was, and the write that met it
    is returned to the caller; the others of the batch are written."""
    await db["things"].insert_one({"_id": "raced", "by": "someone else"})
    writes = [Write(name, {"_id": name, "by": "import"}) for name in ("first", "raced")]

    met = await insert_or_replace(db["things"], writes, on_duplicate=OnDuplicate.KEEP)

    assert [write.id for write in met] == ["raced"]
    stored = list(mongo[db.name]["things"].find().sort("_id", 1))
    assert stored == [{"_id": "first", "by": "import"}, {"_id": "raced", "by": "someone else"}]


async def test_a_document_known_stored_is_replaced_at_once(db: Database, mongo: Mongo) -> None:
    """`stored=True`: an upserting replace, no insert first; nothing is returned."""
    await db["things"].insert_one({"_id": "old", "by": "before"})
    writes = [Write("old", {"_id": "old", "by": "after"}, stored=True)]

    assert await insert_or_replace(db["things"], writes) == []

    assert list(mongo[db.name]["things"].find()) == [{"_id": "old", "by": "after"}]
