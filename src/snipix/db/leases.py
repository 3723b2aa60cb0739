"""Named leases: at most one holder at a time across every replica, expiring on their own.

A periodic job (the retention sweep) takes the lease before it runs; a replica that
crashed while holding it blocks the others only until the lease expires. Acquiring is one
conditional upsert on `_id`, so the database decides the race.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from pymongo.errors import DuplicateKeyError

from snipix.clock import Clock, utc_now
from snipix.db.client import Database

COLLECTION = "leases"


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Lease:
    def __init__(
        self,
        db: Database,
        name: str,
        *,
        ttl: timedelta,
        owner: str | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._leases = db[COLLECTION]
        self.name = name
        self.owner = owner or default_owner()
        self._ttl = ttl
        # This replica's idea of "now": whether another holder's lease has expired is
        # judged by the acquirer's clock (tests move it on instead of waiting out a TTL).
        self._clock = clock

    async def acquire(self) -> bool:
        """Take (or renew) the lease; False if someone else holds an unexpired one."""
        now = self._clock()
        try:
            await self._leases.update_one(
                {"_id": self.name, "$or": [{"expiresAt": {"$lt": now}}, {"owner": self.owner}]},
                {"$set": {"owner": self.owner, "expiresAt": now + self._ttl, "takenAt": now}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return True

    async def release(self) -> None:
        await self._leases.delete_one({"_id": self.name, "owner": self.owner})
