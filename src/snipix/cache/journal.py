"""Invalidations a replica could not deliver to Redis, recorded in the database.

A replica cut off from Redis while the others still reach it (a partition of that replica
alone) cannot leave its tombstone in Redis, and holding the invalidation in memory helps
only once *it* reaches Redis again: meanwhile the other replicas would go on serving the
old entry from Redis and from their local layers. The write itself has just committed to
the database, so the database is reachable: the invalidation is recorded there before the
write is answered, and every replica's recovery loop reads what was recorded since its
last look (one indexed read per tick and replica, never per request), evicts it from its
local layer and delivers the fenced tombstone to Redis for everyone.

An entry is one document per cache key: `_id` the key, `version` the highest version
recorded for it (None for a list's pages, which have no version), `token` a random value
replaced on every record (so a delete removes only the record it delivered, never a newer
one), `at` the database server's time of the record (one clock for every replica, so the
read cursor does not depend on the replicas' clocks agreeing) and `expiresAt`, after
which the server removes it: by then no entry filled before the write is fresh anywhere.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from snipix.clock import Clock, utc_now
from snipix.db.client import Database

COLLECTION: Final = "cache_invalidations"
# The index each poll reads (`at`, then `_id`, as it sorts) and the one the server expires
# entries by.
AT_INDEX: Final = "at_id"
# The comment on the poll's query: it is the recovery loop's, on a timer, never a
# request's, and the slow-query log and the tests' command capture can tell it apart.
POLL_COMMENT: Final = "snipix cache journal poll"
EXPIRE_INDEX: Final = "expire_at"
_FIELDS: Final = {"_id": 1, "version": 1, "token": 1, "at": 1, "page": 1}


@dataclass(frozen=True, slots=True)
class Invalidation:
    """One recorded invalidation: a key at a version (None: a list's pages)."""

    key: str
    version: int | None
    token: str
    at: datetime


class Journal(Protocol):
    """Where invalidations Redis did not take are kept until a replica delivers them."""

    async def record(self, key: str, version: int | None) -> None:
        """Record that `key` changed at `version`; returns once the database has it."""
        ...

    async def since(self, after: datetime | None, limit: int) -> list[Invalidation]:
        """Entries recorded at or after `after` (every entry for None), oldest first."""
        ...

    async def remove(self, entry: Invalidation) -> None:
        """Drop `entry` if it was not recorded again since it was read."""
        ...


class DatabaseJournal:
    """The journal in the service's database (collection `cache_invalidations`)."""

    def __init__(self, db: Database, *, ttl: timedelta, clock: Clock = utc_now) -> None:
        self._entries = db[COLLECTION]
        self._ttl = ttl
        # The expiry is judged by the recording replica's clock; a few seconds of skew
        # between replicas is inside the margin the caller adds to `ttl`.
        self._clock = clock

    async def record(self, key: str, version: int | None) -> None:
        update: dict[str, Any] = {
            # The server's time: the poll cursor compares times from one clock only.
            "$currentDate": {"at": True},
            "$set": {
                "token": uuid.uuid4().hex,
                "expiresAt": self._clock() + self._ttl,
                "page": version is None,
            },
        }
        if version is not None:
            # Two writers of one key recording out of order keep the newer version.
            update["$max"] = {"version": version}
        try:
            await self._entries.update_one({"_id": key}, update, upsert=True)
        except DuplicateKeyError:
            # Another replica's upsert of the same key inserted first: ours now updates.
            await self._entries.update_one({"_id": key}, update, upsert=True)

    async def since(self, after: datetime | None, limit: int) -> list[Invalidation]:
        query: dict[str, Any] = {} if after is None else {"at": {"$gte": after}}
        cursor = (
            self._entries.find(query, _FIELDS, comment=POLL_COMMENT)
            .sort([("at", ASCENDING), ("_id", ASCENDING)])
            .hint(AT_INDEX)
            .limit(limit)
        )
        found: list[Invalidation] = []
        async for doc in cursor:
            version = doc.get("version")
            found.append(
                Invalidation(
                    key=str(doc["_id"]),
                    version=None if doc.get("page") else int(version or 0),
                    token=str(doc["token"]),
                    at=doc["at"],
                )
            )
        return found

    async def remove(self, entry: Invalidation) -> None:
        await self._entries.delete_one({"_id": entry.key, "token": entry.token})
