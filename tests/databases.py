"""Test databases with the schema in place: prepared once per worker, cleared per test.

A fresh database costs every test the migrations and ~25 index builds of a start-up, and
a drop at the end. A worker instead keeps the databases its tests used: when a test ends
with its database's schema exactly as a clean start-up leaves it (collections with their
options, every index, the applied migrations), the documents are deleted and the next
test gets it. Anything else (an extra collection or index, a changed validator, a missing
migration record) drops the database: the check compares what is there, so it cannot
claim a schema that a test changed.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pymongo import MongoClient
from pymongo.database import Database

from snipix.catalogue import MIGRATIONS
from snipix.db.client import connected
from snipix.db.indexes import ensure_catalogue
from snipix.db.migrations import COLLECTION as MIGRATIONS_COLLECTION
from snipix.db.migrations import MigrationRunner
from snipix.settings import Settings

Schema = tuple[tuple[str, str, str], ...]


def new_name() -> str:
    return f"test_{uuid.uuid4().hex[:12]}"


def schema_of(database: Database[dict[str, Any]]) -> Schema:
    """Every collection's options and indexes, and the applied migrations, comparable."""
    parts: list[tuple[str, str, str]] = []
    for info in database.list_collections():
        name = info["name"]
        indexes = sorted(
            repr(sorted((k, v) for k, v in index.items() if k not in {"ns", "v"}))
            for index in database[name].list_indexes()
        )
        parts.append((name, repr(sorted(dict(info.get("options", {})).items())), repr(indexes)))
    records = database[MIGRATIONS_COLLECTION].find({}, {"_id": 1})
    applied = sorted(str(doc["_id"]) for doc in records)
    parts.append((MIGRATIONS_COLLECTION, "applied", repr(applied)))
    return tuple(sorted(parts))


async def _prepare(uri: str, name: str) -> None:
    """What a clean start-up does to a database: migrations, then the index catalogue."""
    settings = Settings(_env_file=None, mongodb_uri=uri, mongodb_database=name)
    async with connected(settings) as client:
        db = client[name]
        await MigrationRunner(db, MIGRATIONS).migrate()
        await ensure_catalogue(db, settings)


@dataclass
class DatabasePool:
    """One worker's reusable test databases (see the module docstring)."""

    client: MongoClient[dict[str, Any]]
    schema: Schema
    uri: str
    free: list[str] = field(default_factory=list)

    @classmethod
    def prepared(cls, client: MongoClient[dict[str, Any]], uri: str) -> DatabasePool:
        """A pool holding one database prepared as a start-up would; its schema is the
        one every database must have to be reused."""
        pool = cls(client, (), uri)
        name = pool.prepare()
        pool.schema = schema_of(client[name])
        pool.free.append(name)
        return pool

    def prepare(self) -> str:
        """A new database, migrated and indexed (on a thread of its own: the caller may
        be inside a running event loop)."""
        name = new_name()
        with ThreadPoolExecutor(1) as thread:
            thread.submit(asyncio.run, _prepare(self.uri, name)).result()
        return name

    def take(self) -> str:
        """A database with the schema and no documents: a cleared one, or a new one."""
        return self.free.pop() if self.free else self.prepare()

    def give_back(self, name: str) -> None:
        """Clear the database for the next test, or drop it when its schema changed."""
        database = self.client[name]
        if schema_of(database) != self.schema:
            self.client.drop_database(name)
            return
        for collection in database.list_collection_names():
            if collection == MIGRATIONS_COLLECTION:
                continue
            # Most tests write to a few collections; a read is cheaper than a delete.
            if database[collection].find_one({}, {"_id": 1}) is not None:
                database[collection].delete_many({})
        self.free.append(name)
