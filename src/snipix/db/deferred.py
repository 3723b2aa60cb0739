"""Cleanup writes that could not reach the database, kept until it answers again.

When the database fails in the middle of a change, the change's own cleanup (releasing a
timeline claim) usually fails with it. Left alone, such leftovers block the next writer
until they expire (a claim: 10 s), which would stretch a 2-second outage into a longer one
for the users who were saving at that moment. This keeps those cleanups (idempotent, by
construction) in memory, bounded, and runs them as soon as the database answers: from the
background loop of the app, and before the next change on the same key.

This is not a reconnection loop: the driver reconnects by itself; this only finishes our
own unfinished business once it has.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Final

import structlog
from pymongo.errors import PyMongoError

log = structlog.get_logger(__name__)

MAX_DEFERRED: Final = 10_000

Cleanup = Callable[[], Awaitable[None]]


class DeferredWrites:
    def __init__(self, max_items: int = MAX_DEFERRED) -> None:
        self._items: OrderedDict[str, Cleanup] = OrderedDict()
        self._max_items = max_items

    def __len__(self) -> int:
        return len(self._items)

    def add(self, key: str, cleanup: Cleanup) -> None:
        """Keep `cleanup` (idempotent) to run once the database answers; newest per key."""
        self._items[key] = cleanup
        self._items.move_to_end(key)
        while len(self._items) > self._max_items:
            # Past the bound the oldest is dropped: it still expires by itself (claims do).
            dropped, _ = self._items.popitem(last=False)
            log.warning("deferred cleanup dropped", key=dropped)

    async def run_for(self, prefix: str) -> None:
        """Before a change: finish what earlier failed changes left under keys starting
        with `prefix` (several claims of one timeline may wait, one per token)."""
        if not self._items:
            return
        for key in [key for key in self._items if key.startswith(prefix)]:
            cleanup = self._items.get(key)
            if cleanup is not None:
                await cleanup()
                self._items.pop(key, None)

    async def drain(self) -> int:
        """Run every kept cleanup; stop at the first database error (still down)."""
        done = 0
        for key, cleanup in list(self._items.items()):
            try:
                await cleanup()
            except PyMongoError:
                break
            self._items.pop(key, None)
            done += 1
        if done:
            log.info("deferred cleanups finished", count=done, left=len(self._items))
        return done

    async def run_every(self, stop: asyncio.Event, interval_s: float = 0.5) -> None:
        while not stop.is_set():
            if self._items:
                await self.drain()
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            except TimeoutError:
                continue
