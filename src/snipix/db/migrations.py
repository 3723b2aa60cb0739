"""Schema migrations: an ordered list, applied once each, under a lock.

Each migration is recorded in the `migrations` collection (`_id` = migration id) after it
succeeds, so a re-run applies only what is pending. A lock document with an expiry keeps
two replicas (or a replica and `snipix db migrate`) from migrating at once; a crashed
holder's lock expires. Migrations must be idempotent: one that failed half-way runs again
from the start.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from snipix.db.client import Database, Document

log = structlog.get_logger(__name__)

COLLECTION = "migrations"
LOCK_ID = "__lock__"


@dataclass(frozen=True, slots=True)
class Migration:
    id: str
    description: str
    apply: Callable[[Database], Awaitable[None]]


class MigrationLocked(Exception):
    """Another process held the migration lock for longer than we were willing to wait."""


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    applied: list[str]
    pending: list[str]
    # Applied in the database but unknown to this code: the database is newer than the build.
    unknown: list[str]

    def as_dict(self) -> dict[str, object]:
        state = "pending" if self.pending else ("ahead" if self.unknown else "ok")
        return {
            "status": state,
            "applied": len(self.applied),
            "pending": self.pending,
            "unknown": self.unknown,
        }


class MigrationRunner:
    def __init__(
        self,
        db: Database,
        migrations: Sequence[Migration],
        *,
        lock_ttl_s: float = 600.0,
        wait_s: float = 120.0,
    ) -> None:
        ids = [m.id for m in migrations]
        if ids != sorted(ids) or len(set(ids)) != len(ids):
            raise ValueError(f"migration ids must be unique and in order: {ids}")
        self._db = db
        self._migrations = list(migrations)
        self._lock_ttl = timedelta(seconds=lock_ttl_s)
        self._wait_s = wait_s
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"

    @property
    def _collection(self) -> AsyncCollection[Document]:
        return self._db[COLLECTION]

    async def status(self) -> MigrationStatus:
        done = {
            str(doc["_id"])
            async for doc in self._collection.find(
                {"appliedAt": {"$exists": True}}, projection={"_id": 1}
            )
        }
        known = [m.id for m in self._migrations]
        return MigrationStatus(
            applied=[i for i in known if i in done],
            pending=[i for i in known if i not in done],
            unknown=sorted(done - set(known)),
        )

    async def migrate(self) -> list[str]:
        """Apply every pending migration in order; return the ids applied by this call."""
        if not (await self.status()).pending:
            return []
        await self._acquire()
        applied: list[str] = []
        try:
            # Re-read under the lock: another process may have migrated while we waited.
            pending = set((await self.status()).pending)
            for migration in self._migrations:
                if migration.id not in pending:
                    continue
                started = time.perf_counter()
                log.info("migration applying", migration=migration.id)
                await migration.apply(self._db)
                duration_ms = round((time.perf_counter() - started) * 1000, 1)
                await self._collection.insert_one(
                    {
                        "_id": migration.id,
                        "description": migration.description,
                        "appliedAt": datetime.now(UTC),
                        "durationMs": duration_ms,
                    }
                )
                log.info("migration applied", migration=migration.id, duration_ms=duration_ms)
                applied.append(migration.id)
        finally:
            await self._release()
        return applied

    async def _acquire(self) -> None:
        deadline = time.monotonic() + self._wait_s
        while True:
            now = datetime.now(UTC)
            try:
                # Matches a free or expired lock (or our own); otherwise the upsert's insert
                # collides on _id, which is how we learn someone else holds it.
                await self._collection.update_one(
                    {"_id": LOCK_ID, "$or": [{"expiresAt": {"$lt": now}}, {"owner": self._owner}]},
                    {"$set": {"owner": self._owner, "expiresAt": now + self._lock_ttl}},
                    upsert=True,
                )
                return
            except DuplicateKeyError:
                if time.monotonic() >= deadline:
                    holder = await self._collection.find_one({"_id": LOCK_ID})
                    raise MigrationLocked(
                        f"migrations are locked by {holder.get('owner') if holder else 'unknown'}"
                    ) from None
                await asyncio.sleep(0.2)

    async def _release(self) -> None:
        await self._collection.delete_one({"_id": LOCK_ID, "owner": self._owner})
