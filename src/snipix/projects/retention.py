"""The retention sweep: projects soft-deleted longer than the window are purged for good,
with everything they own. Run by `snipix retention run` and periodically by the service,
one replica at a time (a lease)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from snipix.auth.actor import Actor
from snipix.clock import iso_instant
from snipix.db.leases import Lease
from snipix.projects.service import ProjectService

log = structlog.get_logger(__name__)

LEASE_NAME = "retention"
# One batch per lease renewal: a long sweep keeps its lease alive batch by batch.
BATCH = 100
# A dry run lists what is due without deleting; bounded so its output stays readable.
DRY_RUN_LIMIT = 10_000


@dataclass
class RetentionReport:
    cutoff: datetime
    dry_run: bool
    projects: list[dict[str, Any]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.projects)


class RetentionJob:
    def __init__(self, service: ProjectService, lease: Lease, *, retention: timedelta) -> None:
        self._service = service
        self._lease = lease
        self._retention = retention
        self._actor = Actor.system("retention")

    async def run(
        self,
        *,
        dry_run: bool = False,
        now: datetime | None = None,
        stop: asyncio.Event | None = None,
    ) -> RetentionReport | None:
        """One sweep; None when another process holds the lease."""
        now = now or datetime.now(UTC)
        report = RetentionReport(cutoff=now - self._retention, dry_run=dry_run)
        if not await self._lease.acquire():
            log.info("retention skipped", reason="another process holds the lease")
            return None
        try:
            while True:
                limit = DRY_RUN_LIMIT if dry_run else BATCH
                docs = await self._service.expired(self._retention, now=now, limit=limit)
                if dry_run:
                    report.projects += [_describe(doc) for doc in docs]
                    break
                for doc in docs:
                    if stop is not None and stop.is_set():
                        # Shutting down: the rest waits for the next sweep.
                        return report
                    purged = await self._service.purge_expired(doc, self._actor)
                    if purged is not None:
                        report.projects.append({**_describe(doc), "deleted": purged.deleted})
                if len(docs) < BATCH:
                    break
                # Renew before the next batch; a lease that expired and went to another
                # replica during this one means that replica sweeps now, not us.
                if not await self._lease.acquire():
                    log.warning("retention stopped", reason="the lease passed to another process")
                    break
        finally:
            await self._lease.release()
        log.info(
            "retention swept",
            dry_run=dry_run,
            projects=report.count,
            cutoff=report.cutoff.isoformat(),
        )
        return report

    async def run_every(
        self, interval_s: float, stop: asyncio.Event, *, first_after_s: float
    ) -> None:
        """Sweep every `interval_s` (the first after `first_after_s`) until `stop` is set.

        The first sweep waits a little so a fleet restarting together does not sweep at
        once; errors are logged and the next sweep tries again.
        """
        delay = first_after_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            if stop.is_set():
                return
            try:
                await self.run(stop=stop)
            except Exception:
                log.exception("retention sweep failed")
            delay = interval_s


def _describe(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "userId": doc["userId"],
        "name": doc.get("name"),
        "deletedAt": iso_instant(doc["deletedAt"]) if doc.get("deletedAt") else None,
    }
