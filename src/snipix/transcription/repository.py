"""Every query on `jobs`: durable transcription jobs, claimed under a lease.

One active job per project: a job's `activeKey` is its project's id while it is queued or
running and its own id once it ends, and `activeKey` is unique, so a second job for the
same project fails to insert (the database decides the race) while any number of finished
ones stay. A worker claims a job with one conditional update (queued, or running with an
expired lease: its worker died), renews the lease while it works, and every later write
names the worker (`owner`), so a worker that lost its job to another cannot overwrite it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from snipix.db.client import Database, Document

JOBS: Final = "jobs"
# The comment on the runner's claim: it runs on a timer, never for a request, and the
# slow-query log and the tests' command capture can tell it apart.
CLAIM_COMMENT: Final = "snipix transcription job claim"

# The indexes the claim reads (db/indexes.py).
STATE_CREATED: Final = "state_created"
STATE_LEASE: Final = "state_lease"

QUEUED: Final = "queued"
RUNNING: Final = "running"
DONE: Final = "done"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"
ACTIVE_STATES: Final = (QUEUED, RUNNING)


class JobRepository:
    def __init__(self, db: Database) -> None:
        self._jobs = db[JOBS]

    async def insert(self, job: Document) -> Document | None:
        """Insert `job`; None when done, else the project's active job (the one that won)."""
        try:
            await self._jobs.insert_one(job)
        except DuplicateKeyError:
            active = await self._jobs.find_one({"activeKey": job["activeKey"]})
            if active is None:  # it ended in between: one more try
                try:
                    await self._jobs.insert_one(job)
                except DuplicateKeyError:
                    return await self._jobs.find_one({"activeKey": job["activeKey"]}) or job
                return None
            return active
        return None

    async def get(self, job_id: str, *, user_id: str, project_id: str) -> Document | None:
        return await self._jobs.find_one(
            {"_id": job_id, "userId": user_id, "projectId": project_id}
        )

    async def by_id(self, job_id: str) -> Document | None:
        return await self._jobs.find_one({"_id": job_id})

    async def claim(self, owner: str, now: datetime, lease_until: datetime) -> Document | None:
        """The oldest job waiting (or one whose worker's lease expired), now this owner's.

        Two index reads find a candidate (an equality on `state`, then the creation order
        or the lease's expiry: served from the indexes even on the embedded engine, where
        an `$or` would read every job ever run), and one conditional update by `_id` takes
        it, so two runners racing for it cannot both win.
        """
        for condition, index in (
            ({"state": QUEUED}, STATE_CREATED),
            ({"state": RUNNING, "leaseExpiresAt": {"$lt": now}}, STATE_LEASE),
        ):
            candidate = await self._jobs.find_one(
                condition,
                {"_id": 1},
                sort=[("createdAt", ASCENDING)] if index == STATE_CREATED else None,
                hint=index,
                comment=CLAIM_COMMENT,
            )
            if candidate is None:
                continue
            claimed: Document | None = await self._jobs.find_one_and_update(
                {"_id": candidate["_id"], **condition},
                {
                    "$set": {
                        "state": RUNNING,
                        "owner": owner,
                        "leaseExpiresAt": lease_until,
                        "startedAt": now,
                        "updatedAt": now,
                        "progress": 0.0,
                    },
                    "$inc": {"attempts": 1},
                },
                return_document=ReturnDocument.AFTER,
                comment=CLAIM_COMMENT,
            )
            if claimed is not None:
                return claimed
        return None

    async def renew(
        self,
        job_id: str,
        owner: str,
        now: datetime,
        lease_until: datetime,
        *,
        progress: float | None = None,
    ) -> bool:
        """Extend the lease (and record progress); False when the job is no longer this
        worker's (cancelled, or taken over after its lease expired)."""
        changes: dict[str, Any] = {"leaseExpiresAt": lease_until, "updatedAt": now}
        if progress is not None:
            changes["progress"] = round(progress, 4)
        result = await self._jobs.update_one(
            {"_id": job_id, "owner": owner, "state": RUNNING}, {"$set": changes}
        )
        return result.matched_count == 1

    async def finish(
        self,
        job_id: str,
        owner: str,
        now: datetime,
        *,
        state: str,
        error: str | None = None,
        result: Document | None = None,
    ) -> bool:
        """End this worker's job; False when it was no longer this worker's."""
        changes: dict[str, Any] = {
            "state": state,
            "activeKey": job_id,
            "finishedAt": now,
            "updatedAt": now,
            "error": error,
        }
        if state == DONE:
            changes["progress"] = 1.0
        if result is not None:
            changes["result"] = result
        outcome = await self._jobs.update_one(
            {"_id": job_id, "owner": owner, "state": RUNNING},
            {"$set": changes, "$unset": {"leaseExpiresAt": ""}},
        )
        return outcome.matched_count == 1

    async def requeue(self, job_id: str, owner: str, now: datetime, *, error: str) -> bool:
        """Give the job back to the queue after a failure worth another attempt."""
        outcome = await self._jobs.update_one(
            {"_id": job_id, "owner": owner, "state": RUNNING},
            {
                "$set": {"state": QUEUED, "error": error, "updatedAt": now, "owner": None},
                "$unset": {"leaseExpiresAt": ""},
            },
        )
        return outcome.matched_count == 1

    async def cancel(
        self, job_id: str, *, user_id: str, project_id: str, now: datetime
    ) -> Document | None:
        """Cancel a job still queued or running; the job as it is afterwards."""
        result: Document | None = await self._jobs.find_one_and_update(
            {
                "_id": job_id,
                "userId": user_id,
                "projectId": project_id,
                "state": {"$in": list(ACTIVE_STATES)},
            },
            {
                "$set": {
                    "state": CANCELLED,
                    "activeKey": job_id,
                    "finishedAt": now,
                    "updatedAt": now,
                    "error": "Cancelled by the user.",
                },
                "$unset": {"leaseExpiresAt": ""},
            },
            return_document=ReturnDocument.AFTER,
        )
        return result
