"""Cache-aside with versioned entries, single-flight loads and graceful degradation.

Reads: a fresh entry for the caller is a hit; otherwise one load per key and replica
(concurrent misses wait for the same database read), then a fenced fill. Writes: after the
database commit, `invalidate` leaves a tombstone at the new version (or `invalidate_pages`
gives the owner's list a new generation), so no replica can read, or put back, the state
before the write.

When the store fails (Redis down, slow past REDIS_TIMEOUT_MS, or refusing): one WARNING per
outage, the error counted, and every request goes to the database as if nothing were cached;
no client sees an error. Invalidations that could not be delivered are kept (bounded) and
delivered before the store is used again, so an entry written before the outage cannot be
served after it. Probes back off from 0.5 s to 2 s, but run every tick while invalidations
are held (another replica may read the old entry the moment Redis returns); and for
`settle_s` after Redis returns nothing it holds is served, so those deliveries land first.
redis-py reconnects by itself.

A replica cut off from Redis while the others still reach it cannot wait for its own
recovery to deliver: before the write is answered its invalidation is also recorded in the
database (`snipix.cache.journal`), and every replica's recovery loop reads what was
recorded each tick, evicts it from memory and delivers it to Redis (fenced by version), so
no replica answers the old state for longer than a tick and a round trip after the write.

When the database fails: an entry past its TTL but within SNIPIX_CACHE_STALE_S is served
as `stale`; a fresh entry read while the database is known to be down is `stale` too (it
may miss a change the database made that we cannot check). `X-Cache` tells the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

import structlog
from redis.exceptions import RedisError

from snipix.cache.entries import Entry
from snipix.cache.journal import Invalidation, Journal
from snipix.cache.local import LocalLayer
from snipix.cache.metrics import CacheMetrics
from snipix.cache.store import CacheStore, MemoryStore
from snipix.clock import Clock, utc_now
from snipix.errors import DatabaseUnavailable
from snipix.flights import SingleFlight
from snipix.observability.metrics import Metrics
from snipix.retry import Kind, RetryPolicy, is_connectivity_error

log = structlog.get_logger(__name__)

Outcome = Literal["hit", "miss", "stale", "bypass"]
# The worst outcome of a request's lookups is what X-Cache reports.
_RANK: Final[dict[Outcome, int]] = {"hit": 0, "miss": 1, "bypass": 2, "stale": 3}
_outcome: ContextVar[Outcome | None] = ContextVar("cache_outcome", default=None)

MAX_PENDING: Final = 10_000
# While the store is down, one probe (a PING, then the held invalidations) per interval,
# from 0.5 s doubling to 2 s: a refused connection costs nothing, a hung Redis costs one
# timeout per probe, never one per request.
PROBE_MIN_S: Final = 0.5
PROBE_MAX_S: Final = 2.0
# A tombstone must outlive any read that started before the write it marks; reads are
# bounded by the server selection timeout and socket timeouts, far below this.
TOMBSTONE_TTL_MS: Final = 120_000
PURGED: Final = 2**62
# How long after Redis returns from an outage its entries are not served (the app passes
# SNIPIX_CACHE_LOCAL_MAX_LAG_MS): a replica that wrote meanwhile holds the invalidation and
# probes every tick (0.25 s) until it has delivered it, well within this.
DEFAULT_SETTLE_S: Final = 1.0
# The journal is read from the newest `at` seen minus this: an entry stamped earlier by the
# database but visible only after a later one was read (two records in flight at once) is
# still found. Far above a record's duration; entries already applied are skipped by token.
JOURNAL_OVERLAP: Final = timedelta(seconds=5)
# Entries read per tick: a backlog (after an outage every replica reads the journal from the
# start) is delivered a page per tick, and nothing from Redis is served until it is done.
JOURNAL_PAGE: Final = 500


def request_outcome() -> Outcome | None:
    """The cache outcome of this request's lookups (for the X-Cache header), if any."""
    return _outcome.get()


def reset_request_outcome() -> None:
    """At the start of a request: nothing looked up yet (a server may reuse a context)."""
    _outcome.set(None)


def _record(outcome: Outcome) -> None:
    current = _outcome.get()
    if current is None or _RANK[outcome] > _RANK[current]:
        _outcome.set(outcome)


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a loader read: the version it read and the payload to cache and return."""

    version: int
    payload: bytes


class _StoreDown(Exception):
    """The store is in an outage: this call bypasses it."""


class Cache:
    def __init__(
        self,
        store: CacheStore | None,
        *,
        prefix: str,
        ttl_s: float,
        jitter: float,
        stale_s: float,
        policy: RetryPolicy,
        metrics: CacheMetrics,
        database_up: Callable[[], bool] = lambda: True,
        local: LocalLayer | None = None,
        clock: Clock = utc_now,
        settle_s: float = DEFAULT_SETTLE_S,
        journal: Journal | None = None,
    ) -> None:
        self._store = store
        # Entries carry their expiry as a wall-clock time every replica reads alike.
        self._clock = clock
        self._local = local
        self._prefix = prefix
        self._ttl_s = ttl_s
        self._jitter = jitter
        self._stale_s = stale_s
        self._policy = policy
        self._metrics = metrics
        self._database_up = database_up
        # One database load per entry at a time in this process; the others wait for it.
        self._flights: SingleFlight[Loaded | None] = SingleFlight()
        # Outage state.
        self._down_since: float | None = None
        self._next_probe = 0.0
        self._probe_interval = PROBE_MIN_S
        self._pending_entities: dict[str, int] = {}
        self._pending_pages: set[str] = set()
        self._pending_overflow = False
        self._recovery_running = False
        self._next_track = 0.0
        # After Redis returns from an outage: until when what it holds is not served.
        self._settle_s = settle_s
        self._distrust_until = float("-inf")
        # The invalidation journal (multi-replica deployments) and how far it has been read:
        # None means "from the start" — at start-up and after any outage or silence of
        # Redis, when entries another replica could not deliver may be waiting; until that
        # read reaches the end, nothing from Redis or memory is served.
        self._journal = journal
        self._journal_after: datetime | None = None
        self._journal_paging = False
        self._journal_behind = journal is not None
        self._journal_applied: dict[str, datetime] = {}
        self._local_distrust_seen = float("-inf")

    @classmethod
    def disabled(cls) -> Cache:
        """No caching: for tools outside the service (the CLI) and apps that turn it off."""
        return cls(
            None,
            prefix="snipix",
            ttl_s=1,
            jitter=0,
            stale_s=0,
            policy=RetryPolicy(attempts=1),
            metrics=CacheMetrics(Metrics("unknown")),
        )

    def close(self) -> None:
        """At shutdown: the local layer's tracking connection (the store's client is the app's)."""
        if self._local is not None:
            self._local.close()

    @property
    def backend(self) -> str:
        return self._store.name if self._store is not None else "off"

    @property
    def available(self) -> bool:
        return self._store is not None and self._down_since is None

    def key(self, kind: str, entity_id: str) -> str:
        return f"{self._prefix}:{kind}:{entity_id}"

    # --- store calls, with retries and the outage switch ---------------------------------

    async def _call[T](self, operation: str, call: Callable[[CacheStore], Awaitable[T]]) -> T:
        store = self._store
        if store is None:
            raise _StoreDown
        if self._down_since is not None:
            # The recovery loop probes; a request only when a probe is due and no loop runs
            # (tools and tests that use the cache without the app).
            if self._recovery_running or time.monotonic() < self._next_probe:
                raise _StoreDown
            await self._recover(store)
        try:
            return await self._policy.run(lambda: call(store), operation=operation, kind=Kind.CACHE)
        except (RedisError, OSError) as error:
            self._failed(error)
            raise _StoreDown from error

    def _failed(self, error: BaseException) -> None:
        self._metrics.event("error")
        if self._local is not None:
            # Invalidations may be missed while Redis is unreachable: trust nothing held.
            self._local.close()
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            self._probe_interval = PROBE_MIN_S
            log.warning(
                "cache unavailable; requests go to the database",
                backend=self.backend,
                error_class=type(error).__name__,
            )
        else:
            self._probe_interval = min(PROBE_MAX_S, self._probe_interval * 2)
        self._next_probe = now + self._probe_interval

    async def _recover(self, store: CacheStore) -> None:
        """Deliver what the outage held back, then use the store again (or stay down)."""
        assert self._down_since is not None
        try:
            await store.ping()
            await self._deliver_pending(store)
        except (RedisError, OSError) as error:
            self._failed(error)
            raise _StoreDown from error
        log.info(
            "cache recovered",
            backend=self.backend,
            down_s=round(time.monotonic() - self._down_since, 1),
        )
        self._down_since = None
        self._distrust_until = time.monotonic() + self._settle_s
        self._rewind_journal()

    def _trusted(self) -> bool:
        """Whether an entry read from Redis may be served now.

        Not for a while after Redis returns from an outage (ours, or a silence the local
        layer's heartbeat saw): another replica may have acknowledged a write meanwhile and
        still hold its invalidation, which it delivers within a tick of Redis' return. Until
        then a lookup loads from the database (and fills, fenced by version as always).
        """
        if self._journal_behind:
            return False
        until = self._distrust_until
        if self._local is not None:
            until = max(until, self._local.distrust_until)
        return time.monotonic() >= until

    async def _deliver_pending(self, store: CacheStore) -> None:
        if self._pending_overflow:
            await store.flush_prefix(self._prefix)
            self._pending_entities.clear()
            self._pending_pages.clear()
            self._pending_overflow = False
            return
        for key, version in list(self._pending_entities.items()):
            await store.fill(key, Entry.tombstone_for(version).encode(), version, TOMBSTONE_TTL_MS)
            del self._pending_entities[key]
        for key in list(self._pending_pages):
            await store.page_reset(key, uuid.uuid4().hex, self._hard_ttl_ms())
            self._pending_pages.discard(key)

    @property
    def pending_invalidations(self) -> int:
        return len(self._pending_entities) + len(self._pending_pages)

    async def track(self) -> None:
        """(Re)open the local layer's tracking connection when Redis answers and it is off."""
        local = self._local
        if local is None or local.active or self._down_since is not None:
            return
        if time.monotonic() < self._next_track:
            return
        if await asyncio.to_thread(local.connect):
            log.info("cache local layer on", prefix=self._prefix)
        else:
            self._next_track = time.monotonic() + PROBE_MAX_S

    async def probe(self) -> None:
        """Background: try a store that is down (and deliver what it missed) when due.

        Requests never wait for this: while the store is down they bypass it, so caching
        resumes within a probe interval of the store's return even with no traffic, and
        held invalidations reach it before any request reads from it again.
        """
        if self._store is None or self._down_since is None:
            return
        # Invalidations held here are a write other replicas may read stale from Redis the
        # moment it returns: no backoff then, a probe every tick delivers them at once.
        if not self._holding and time.monotonic() < self._next_probe:
            return
        with contextlib.suppress(_StoreDown):
            await self._recover(self._store)

    @property
    def _holding(self) -> bool:
        return self.pending_invalidations > 0 or self._pending_overflow

    def heartbeat(self) -> None:
        """Send the local layer's heartbeat (see `LocalLayer`); the recovery loop calls it."""
        if self._local is not None and self._down_since is None:
            self._local.heartbeat()

    async def run_recovery(self, stop: asyncio.Event, interval_s: float = 0.25) -> None:
        """Until `stop`: probe the store while it is down, and beat the local layer's heart.

        The tick is at most the heartbeat interval, so the local layer answers only while
        this loop runs: a layer nobody confirms stops answering by itself.
        """
        if self._local is not None:
            interval_s = min(interval_s, self._local.heartbeat_interval_s)
        self._recovery_running = True
        try:
            await self._probe_until(stop, interval_s)
        finally:
            self._recovery_running = False

    async def _probe_until(self, stop: asyncio.Event, interval_s: float) -> None:
        while not stop.is_set():
            self.heartbeat()
            await self.probe()
            await self.track()
            await self.poll_journal()
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            except TimeoutError:
                continue

    def _hold(self, key: str, version: int | None) -> None:
        if self.pending_invalidations >= MAX_PENDING:
            # Too much to remember key by key: drop everything we cached on recovery.
            self._pending_overflow = True
            return
        if version is None:
            self._pending_pages.add(key)
        else:
            self._pending_entities[key] = max(version, self._pending_entities.get(key, 0))

    # --- the invalidation journal --------------------------------------------------------

    async def _journal_record(self, key: str, version: int | None) -> None:
        """Record an invalidation Redis did not take, before the write is answered.

        A failure propagates: the write has committed, but answering it as done without
        the record would let another replica answer the old state until the TTL ends. The
        client sees an error (as for a lost acknowledgement) and reads or retries.
        """
        journal = self._journal
        if journal is None:
            return
        await self._policy.run(
            lambda: journal.record(key, version),
            operation="cache.journal",
            kind=Kind.IDEMPOTENT_WRITE,
        )

    def _rewind_journal(self) -> None:
        """Read the journal from the start again: Redis was out of our reach, and another
        replica may have recorded invalidations that nobody could deliver meanwhile."""
        if self._journal is None:
            return
        self._journal_after = None
        self._journal_paging = False
        self._journal_applied.clear()
        self._journal_behind = True

    async def poll_journal(self) -> None:
        """Background, each tick: apply what other replicas recorded in the journal.

        Each entry is evicted from the local layer and delivered to Redis (a tombstone at
        its version, fenced, or a new generation for a list), then removed: Redis has it,
        and its tracking pushes the eviction to every replica that reaches Redis, so no
        replica needs the entry any more (a replica that does not reach Redis serves
        nothing cached and reads the journal from the start on its return). Several
        replicas may deliver one entry; both operations are idempotent and the delete
        matches the record's token, so a newer record of the key is never removed.

        Skipped while Redis is down for this replica (nothing cached is served then, and
        the read starts over on recovery) and on a tick the database does not answer.
        """
        journal, store = self._journal, self._store
        if journal is None or store is None or self._down_since is not None:
            return
        local = self._local
        if local is not None and local.distrust_until != self._local_distrust_seen:
            # The tracking connection was silent or lost: Redis may have been out of reach.
            self._local_distrust_seen = local.distrust_until
            self._rewind_journal()
        after = self._journal_after
        if after is not None and not self._journal_paging:
            after -= JOURNAL_OVERLAP
        try:
            entries = await journal.since(after, JOURNAL_PAGE)
        except Exception as error:  # noqa: BLE001 (reported below; the loop must go on)
            # A database that does not answer skips the tick; anything else is reported,
            # and skips it too: the loop also beats the local layer's heart and must go on.
            if not _database_down(error):
                log.warning("cache journal unreadable", error_class=type(error).__name__)
            return
        for entry in entries:
            if self._journal_applied.get(entry.token) is not None:
                continue
            if local is not None:
                local.evict(entry.key)
            try:
                await self._deliver_journal_entry(entry)
            except _StoreDown:
                return  # now down: the read starts over once Redis answers
            with contextlib.suppress(Exception):
                await journal.remove(entry)
            self._journal_applied[entry.token] = entry.at
        if entries:
            newest = entries[-1].at
            cursor = self._journal_after
            self._journal_after = newest if cursor is None else max(cursor, newest)
            # Past a full page the next read continues from the newest seen (the overlap
            # would read the same page again); a short page means the end was reached.
            self._journal_paging = len(entries) >= JOURNAL_PAGE
            if self._journal_paging:
                return
        # An empty journal leaves the cursor at the start: reading an empty collection
        # whole costs no more, and no replica clock is compared with the server's.
        self._journal_behind = False
        if self._journal_after is not None:
            # Tokens the next reads cannot return any more need not be remembered.
            horizon = self._journal_after - 2 * JOURNAL_OVERLAP
            for token, at in list(self._journal_applied.items()):
                if at < horizon:
                    del self._journal_applied[token]

    async def _deliver_journal_entry(self, entry: Invalidation) -> None:
        key, version = entry.key, entry.version
        if version is None:
            await self._call(
                "cache.invalidate",
                lambda store: store.page_reset(key, uuid.uuid4().hex, self._hard_ttl_ms()),
            )
            return
        tombstone = Entry.tombstone_for(version).encode()
        await self._call(
            "cache.invalidate",
            lambda store: store.fill(key, tombstone, version, TOMBSTONE_TTL_MS),
        )

    # --- TTLs ----------------------------------------------------------------------------

    def _ttl_s_jittered(self) -> float:
        # Jitter spreads the expiry of entries filled together (a deploy, a popular list).
        return self._ttl_s * (1 + random.uniform(-self._jitter, self._jitter))  # noqa: S311

    def _hard_ttl_ms(self, ttl_s: float | None = None) -> int:
        return int(((ttl_s if ttl_s is not None else self._ttl_s) + self._stale_s) * 1000)

    def _now_ms(self) -> int:
        return int(self._clock().timestamp() * 1000)

    # --- entities ------------------------------------------------------------------------

    async def entity(
        self,
        kind: str,
        entity_id: str,
        owner: str,
        load: Callable[[], Awaitable[Loaded | None]],
        *,
        reported: bool = True,
    ) -> Loaded | None:
        """The owner's cached (version, payload), or `load()`'s (None: not for this owner).

        `reported=False`: a lookup that is not part of the answer (an account's session
        standing, checked before the route runs) stays out of X-Cache and the lookup counts,
        which describe the representation a client receives.
        """
        key = self.key(kind, entity_id)
        count = self._hit if reported else _nothing
        now_ms = self._now_ms()
        local = self._local
        if local is not None and self._down_since is None and not self._journal_behind:
            held = local.get(key)
            if held is not None and held.fresh(now_ms):
                if held.owner != owner:
                    count()
                    return None
                count()
                return Loaded(held.version, held.payload)
        sequence = local.sequence if local is not None else 0
        cached: Entry | None = None
        try:
            raw = await self._call("cache.get", lambda store: store.get(key))
            cached = Entry.decode(raw) if raw is not None else None
        except _StoreDown:
            cached = None
        trusted = cached is not None and self._trusted()
        if local is not None and cached is not None and trusted and cached.fresh(now_ms):
            local.put(key, cached, sequence)
        if trusted and cached is not None and not cached.tombstone and cached.owner != owner:
            # Someone else's: for this caller it does not exist (404, never 403).
            count()
            return None
        if trusted and cached is not None and cached.fresh(now_ms):
            count()
            return Loaded(cached.version, cached.payload)
        try:
            loaded = await self._flights.run(
                f"{key}|{owner}", lambda: self._load_entity(key, owner, load, reported=reported)
            )
        except Exception as error:
            if _database_down(error) and cached is not None and not cached.tombstone:
                if reported:
                    self._metrics.event("stale")
                    _record("stale")
                return Loaded(cached.version, cached.payload)
            raise
        return loaded

    def peek(self, kind: str, entity_id: str, owner: str) -> Loaded | None:
        """The owner's entry when process memory holds it fresh; None for anything else.

        No I/O beyond draining the local layer's invalidations (a non-blocking read), so
        exactly as current as `entity` on a local hit. None (a miss, an expired entry,
        someone else's, an outage) means "ask `entity`", which knows what to do. Not
        counted: the caller calls `hit()` for each entry it serves.
        """
        key = self.key(kind, entity_id)
        entry: Entry | None = None
        if self._local is not None:
            if self._down_since is not None or self._journal_behind:
                return None
            entry = self._local.get(key)
        elif isinstance(self._store, MemoryStore):
            raw = self._store.peek(key)
            entry = Entry.decode(raw) if raw is not None else None
        if entry is None or entry.owner != owner or not entry.fresh(self._now_ms()):
            return None
        return Loaded(entry.version, entry.payload)

    def hit(self) -> None:
        """Count an entry served from `peek` (as `entity` counts its own)."""
        self._hit()

    async def _load_entity(
        self,
        key: str,
        owner: str,
        load: Callable[[], Awaitable[Loaded | None]],
        *,
        reported: bool = True,
    ) -> Loaded | None:
        if reported:
            self._metrics.event("miss")
            _record("miss" if self.available else "bypass")
        # Loaders only read: safe to repeat after a failover (snipix.retry).
        loaded = await self._policy.run(load, operation=f"{key.split(':')[-2]}.load")
        if loaded is None or self._store is None:
            return loaded
        ttl_s = self._ttl_s_jittered()
        entry = Entry(loaded.version, self._now_ms() + int(ttl_s * 1000), owner, loaded.payload)
        with contextlib.suppress(_StoreDown):
            await self._call(
                "cache.fill",
                lambda store: store.fill(
                    key, entry.encode(), loaded.version, self._hard_ttl_ms(ttl_s)
                ),
            )
        return loaded

    async def invalidate(self, kind: str, entity_id: str, version: int) -> None:
        """After a committed write at `version`: nobody reads or stores an older state."""
        if self._store is None:
            return
        tombstone = Entry.tombstone_for(version).encode()
        await self._after_write(
            self.key(kind, entity_id), version, tombstone, TOMBSTONE_TTL_MS, "cache.invalidate"
        )

    async def replace(
        self, kind: str, entity_id: str, owner: str, version: int, render: Callable[[], bytes]
    ) -> None:
        """After a committed write at `version`: its own state (`render()`, called only
        when there is a cache to fill) becomes the entry (write-through).

        The same fence as `invalidate`: the fill is refused if a newer version is stored,
        and no older state can replace it, so it is exactly as safe; the next read is a hit
        instead of a database read.
        """
        if self._store is None:
            return
        ttl_s = self._ttl_s_jittered()
        entry = Entry(version, self._now_ms() + int(ttl_s * 1000), owner, render())
        await self._after_write(
            self.key(kind, entity_id),
            version,
            entry.encode(),
            self._hard_ttl_ms(ttl_s),
            "cache.replace",
        )

    async def _after_write(
        self, key: str, version: int, value: bytes, ttl_ms: int, operation: str
    ) -> None:
        """`value` stored under `key`, fenced at the written `version`; while the store is
        out, the key is held (never served from memory) and journalled, so the fence reaches
        Redis before anyone reads it again."""
        if self._local is not None:
            self._local.evict(key)
        try:
            await self._call(operation, lambda store: store.fill(key, value, version, ttl_ms))
        except _StoreDown:
            self._hold(key, version)
            await self._journal_record(key, version)

    async def forget(self, kind: str, entity_id: str) -> None:
        """The entity is gone for good (purged): nothing may be cached for it again."""
        await self.invalidate(kind, entity_id, PURGED)

    # --- list pages ----------------------------------------------------------------------

    async def page(
        self,
        kind: str,
        owner: str,
        query: str,
        load: Callable[[], Awaitable[bytes]],
    ) -> bytes:
        """A cached page of `owner`'s list for `query` (any stable text), or `load()`'s."""
        key = self.key(kind, owner)
        field = "p:" + hashlib.blake2b(query.encode(), digest_size=16).hexdigest()
        seen: str | None = None
        cached: Entry | None = None
        store_ok = True
        try:
            seen, raw = await self._call("cache.get", lambda store: store.page_get(key, field))
            cached = Entry.decode(raw) if raw is not None else None
        except _StoreDown:
            store_ok = False
        if cached is not None and cached.fresh(self._now_ms()) and self._trusted():
            self._hit()
            return cached.payload
        try:
            loaded = await self._flights.run(
                f"{key}|{field}|{seen}",
                lambda: self._load_page(key, field, seen, load, store_ok=store_ok),
            )
        except Exception as error:
            if _database_down(error) and cached is not None:
                self._metrics.event("stale")
                _record("stale")
                return cached.payload
            raise
        assert loaded is not None
        return loaded.payload

    async def _load_page(
        self,
        key: str,
        field: str,
        seen: str | None,
        load: Callable[[], Awaitable[bytes]],
        *,
        store_ok: bool,
    ) -> Loaded:
        self._metrics.event("miss")
        _record("miss" if self.available else "bypass")
        payload = await self._policy.run(load, operation=f"{key.split(':')[-2]}.load")
        if store_ok:
            ttl_s = self._ttl_s_jittered()
            raw = Entry(0, self._now_ms() + int(ttl_s * 1000), None, payload).encode()
            with contextlib.suppress(_StoreDown):
                await self._call(
                    "cache.fill",
                    lambda store: store.page_fill(
                        key, seen, field, raw, uuid.uuid4().hex, self._hard_ttl_ms(ttl_s)
                    ),
                )
        return Loaded(0, payload)

    async def invalidate_pages(self, kind: str, owner: str) -> None:
        """After a committed write that can change `owner`'s list: a new generation."""
        key = self.key(kind, owner)
        if self._store is None:
            return
        try:
            await self._call(
                "cache.invalidate",
                lambda store: store.page_reset(key, uuid.uuid4().hex, self._hard_ttl_ms()),
            )
        except _StoreDown:
            self._hold(key, None)
            await self._journal_record(key, None)

    # --- helpers -------------------------------------------------------------------------

    def _hit(self) -> None:
        if self._database_up():
            self._metrics.event("hit")
            _record("hit")
        else:
            self._metrics.event("stale")
            _record("stale")


def _nothing() -> None:
    """What an unreported lookup counts."""


def _database_down(error: BaseException) -> bool:
    return isinstance(error, DatabaseUnavailable) or is_connectivity_error(error)
