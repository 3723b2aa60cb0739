"""Restoring a backup: every file checked first, then the documents upserted by `_id`.

A restore checks every file against the manifest before it writes anything, refuses a
backup from a newer schema, applies the backup's migrations and builds the indexes from
the catalogue (`ensure_catalogue`, like a deploy does: a backup holds no indexes), then
writes the documents. Documents already identical are not written, so a second restore
changes nothing; the others are inserted, or replaced when stored already
(`snipix.db.bulk`). Files are read in batches: no collection is ever held in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import bson
from bson import Decimal128, ObjectId, json_util
from bson.datetime_ms import DatetimeMS
from bson.errors import BSONError
from bson.raw_bson import RawBSONDocument
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, PyMongoError

from snipix.backup.errors import BackupError, first_line
from snipix.backup.files import BATCH, JSON_OPTIONS, read_batches, verify
from snipix.backup.manifest import CollectionEntry, Manifest, read_manifest
from snipix.catalogue import MIGRATIONS
from snipix.db.bulk import Write, insert_or_replace, raw_collection
from snipix.db.client import Database
from snipix.db.indexes import ensure_catalogue
from snipix.db.migrations import MigrationRunner
from snipix.progress import NoProgress, Progress
from snipix.settings import Settings

# Documents per bulk write, and ids per `$in` lookup: both bounded for the embedded engine
# (an `$in` becomes one SQL expression, limited to a depth of 1,000; some writes cost a
# scan each), so every command ends well within the socket timeout.
WRITE_BATCH = 100
LOOKUP_BATCH = 100


@dataclass(slots=True)
class CollectionRestore:
    name: str
    inserted: int = 0
    replaced: int = 0
    unchanged: int = 0

    @property
    def written(self) -> int:
        return self.inserted + self.replaced

    @property
    def documents(self) -> int:
        return self.written + self.unchanged


@dataclass(slots=True)
class RestoreReport:
    dry_run: bool
    database: str
    collections: list[CollectionRestore] = field(default_factory=list)
    # Migrations this build has and the backup had not: applied after the documents.
    later_migrations: list[str] = field(default_factory=list)

    def total(self, attribute: str) -> int:
        return sum(int(getattr(entry, attribute)) for entry in self.collections)


def check_schema(manifest: Manifest) -> None:
    """Refuse a backup whose schema has migrations this build does not know."""
    known = {migration.id for migration in MIGRATIONS}
    unknown = [m for m in manifest.migrations if m not in known]
    if unknown:
        raise BackupError(
            f"the backup is from a newer schema: migration(s) {', '.join(unknown)} "
            "unknown to this build; restore it with a newer snipix"
        )


async def restore(
    db: Database,
    directory: Path,
    settings: Settings,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> RestoreReport:
    """Restore the backup in `directory` into `db`: every file checked first, then the
    backup's migrations and the index catalogue, the documents upserted by `_id`, and the
    migrations the backup did not have yet. `dry_run` counts and writes nothing."""
    progress = progress or NoProgress()
    manifest = read_manifest(directory)
    verify(directory, manifest, progress)
    check_schema(manifest)
    try:
        status = await MigrationRunner(db, MIGRATIONS).status()
        ahead = [m for m in status.applied if m not in manifest.migrations] + status.unknown
        if ahead:
            raise BackupError(
                f"database {db.name} has migration(s) {', '.join(ahead)} the backup has not; "
                "restore it into an empty database"
            )
        report = RestoreReport(dry_run=dry_run, database=db.name)
        if not dry_run:
            # The schema the documents were written under: validators, then the indexes.
            await MigrationRunner(
                db, [m for m in MIGRATIONS if m.id in manifest.migrations]
            ).migrate()
            await ensure_catalogue(db, settings)
        for entry in manifest.collections:
            report.collections.append(
                await _load(db, directory / entry.file, entry, dry_run=dry_run, progress=progress)
            )
        if dry_run:
            report.later_migrations = [m.id for m in MIGRATIONS if m.id not in manifest.migrations]
        else:
            report.later_migrations = await MigrationRunner(db, MIGRATIONS).migrate()
    except BulkWriteError as error:
        errors = error.details.get("writeErrors") or [{}]
        reason = errors[0].get("errmsg", str(error))
        raise BackupError(f"writing the backup's documents failed: {reason}") from None
    except PyMongoError as error:
        raise BackupError(f"the database failed: {first_line(error)}") from None
    return report


async def _load(
    db: Database, path: Path, entry: CollectionEntry, *, dry_run: bool, progress: Progress
) -> CollectionRestore:
    result = CollectionRestore(entry.name)
    collection = raw_collection(db, entry.name)
    progress.start(entry.name, entry.count)
    for number, batch in enumerate(read_batches(path)):
        documents: list[bytes] = []
        ids: list[Any] = []
        for offset, line in enumerate(batch):
            try:
                doc = json_util.loads(line, json_options=JSON_OPTIONS)
                ids.append(doc["_id"])
                documents.append(bson.encode(doc))
            except (ValueError, TypeError, KeyError, BSONError) as error:
                where = f"{entry.file} line {number * BATCH + offset + 1}"
                raise BackupError(f"{where} is not a document with an _id: {error}") from None
        existing = await _existing(collection, ids)
        writes: list[Write[RawBSONDocument]] = []
        for _id, encoded in zip(ids, documents, strict=True):
            current = existing.get(_key(_id))
            if current == encoded:
                result.unchanged += 1
                continue
            if current is None:
                result.inserted += 1
            else:
                result.replaced += 1
            writes.append(Write(_id, RawBSONDocument(encoded), stored=current is not None))
        if not dry_run:
            for start in range(0, len(writes), WRITE_BATCH):
                # The backup is the truth: validation is bypassed, so documents stored
                # before a validator existed (or under a looser one) come back as they
                # were; one inserted meanwhile by someone else is replaced after all.
                await insert_or_replace(
                    collection, writes[start : start + WRITE_BATCH], bypass_validation=True
                )
        progress.advance(len(batch))
    return result


async def _existing(
    collection: AsyncCollection[RawBSONDocument], ids: list[Any]
) -> dict[bytes, bytes]:
    """The stored documents with these `_id`s (in backup order, so in the server's `_id`
    order), as raw BSON by `_key`.

    A run of same-type ids is read as one `_id` range (an index range on any server, and
    fast on the embedded engine, where `$in` is not); a range holding many more documents
    than the run (a user's backup restored into a full database) falls back to `$in`.
    A wrong guess costs only a count: every write is an upsert.
    """
    found: dict[bytes, bytes] = {}
    for run in _runs(ids):
        if len(run) > 1 and _bracket(run[0]) is not None:
            limit = 2 * len(run) + 16
            docs = (
                await collection.find({"_id": {"$gte": run[0], "$lte": run[-1]}})
                .sort("_id", ASCENDING)
                .limit(limit)
                .to_list()
            )
            if len(docs) < limit:
                found.update((_key(doc["_id"]), bytes(doc.raw)) for doc in docs)
                continue
        for start in range(0, len(run), LOOKUP_BATCH):
            query = {"_id": {"$in": run[start : start + LOOKUP_BATCH]}}
            async for doc in collection.find(query):
                found[_key(doc["_id"])] = bytes(doc.raw)
    return found


def _bracket(value: Any) -> str | None:
    """The comparison class of an `_id` (a range never spans two), None when not ranged."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal128):
        return "number"
    for kind, types in _BRACKETS:
        if isinstance(value, types):
            return kind
    return None


_BRACKETS: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("string", str),
    ("objectId", ObjectId),
    ("date", (datetime, DatetimeMS)),
    ("object", Mapping),
)


def _runs(ids: list[Any]) -> Iterator[list[Any]]:
    """Consecutive ids of the same bracket."""
    run: list[Any] = []
    for value in ids:
        if run and _bracket(value) != _bracket(run[-1]):
            yield run
            run = []
        run.append(value)
    if run:
        yield run


def _key(value: Any) -> bytes:
    # Any `_id` (a document too) as a dictionary key, equal exactly when BSON-equal.
    return bson.encode({"_id": value})
