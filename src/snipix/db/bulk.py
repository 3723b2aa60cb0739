"""Bulk writes of documents that may already be stored: insert first, replace duplicates.

The restore of a backup and the legacy import both store many documents by `_id`, some of
which can be in the database already (a second restore, the leftover of an interrupted
import, another writer meanwhile). An upserting replace would do it in one operation, but
on the embedded engine one that inserts costs a collection scan (80 ms at 20,000
documents). So a document not known to be stored is inserted, and only an insert that
meets a stored document (duplicate key) is followed by a replace, or left as it is when
the caller keeps what is stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from enum import StrEnum
from typing import Any, Final, cast

from bson.codec_options import CodecOptions, DatetimeConversion
from bson.raw_bson import RawBSONDocument
from pymongo import InsertOne, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from snipix.db.client import Database

DUPLICATE_KEY: Final = 11000

# Documents read as the server's bytes: nothing decoded to Python and back before writing.
RAW: Final = CodecOptions(
    document_class=RawBSONDocument,
    tz_aware=True,
    tzinfo=UTC,
    datetime_conversion=DatetimeConversion.DATETIME_AUTO,
)


def raw_collection(db: Database, name: str) -> AsyncCollection[RawBSONDocument]:
    """`name` reading and writing raw BSON (`RAW`), for copies that must stay exact."""
    # The codec options decide the document class; the stubs only know the database's.
    return cast(AsyncCollection[RawBSONDocument], db.get_collection(name, codec_options=RAW))


class OnDuplicate(StrEnum):
    """What happens to a document an insert finds already stored."""

    # Ours replaces it (upsert by `_id`).
    REPLACE = "replace"
    # It stays; the write is returned to the caller.
    KEEP = "keep"


@dataclass(frozen=True, slots=True)
class Write[D: Mapping[str, Any]]:
    """One document to store by `_id`; `stored`: known to be in the database already, so
    it is replaced (upsert) at once rather than inserted."""

    id: Any
    document: D
    stored: bool = False

    def replace(self) -> ReplaceOne[D]:
        return ReplaceOne({"_id": self.id}, self.document, upsert=True)

    def operation(self) -> InsertOne[D] | ReplaceOne[D]:
        return self.replace() if self.stored else InsertOne(self.document)


async def insert_or_replace[D: Mapping[str, Any]](
    collection: AsyncCollection[D],
    writes: Sequence[Write[D]],
    *,
    on_duplicate: OnDuplicate = OnDuplicate.REPLACE,
    bypass_validation: bool = False,
    duplicate_replaces: bool = False,
) -> list[Write[D]]:
    """Store `writes` as one unordered bulk write; the ones that met a stored document.

    A duplicate key met by an insert is such a document: replaced by ours afterwards
    (`OnDuplicate.REPLACE`, a second bulk write), or kept (`KEEP`). With
    `duplicate_replaces`, a duplicate met by an upserting replace (another writer's upsert
    of the same `_id`, which not every engine retries itself) counts too. Any other write
    error is raised as the `BulkWriteError` it is. `bypass_validation` writes documents a
    collection's validator would refuse (a backup holds what was stored, under whatever
    validator there was then).
    """
    if not writes:
        return []
    bypass = True if bypass_validation else None
    operations = [write.operation() for write in writes]
    try:
        await collection.bulk_write(operations, ordered=False, bypass_document_validation=bypass)
    except BulkWriteError as error:
        errors = error.details.get("writeErrors") or []
        met = [
            writes[e["index"]]
            for e in errors
            if e.get("code") == DUPLICATE_KEY
            and (duplicate_replaces or not writes[e["index"]].stored)
        ]
        if len(met) != len(errors) or error.details.get("writeConcernErrors"):
            raise
        if on_duplicate is OnDuplicate.REPLACE:
            await collection.bulk_write(
                [write.replace() for write in met],
                ordered=False,
                bypass_document_validation=bypass,
            )
        return met
    return []
