"""The invalidation journal: what a replica cut off from Redis records in the database, and
how every other replica's recovery loop delivers it to Redis.

Each test has a writer whose Redis is unreachable (a closed port: refused at once) and a
reader on a real redis-server, both on the test's real database, as two replicas are
when Redis is cut off from the writer only.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from pymongo.errors import AutoReconnect
from redis.asyncio import Redis

from snipix.cache.entries import Entry
from snipix.cache.journal import COLLECTION, EXPIRE_INDEX, DatabaseJournal, Invalidation
from snipix.cache.metrics import CacheMetrics
from snipix.cache.service import Cache, Loaded
from snipix.cache.store import RedisStore
from snipix.db.client import Database
from snipix.db.indexes import catalogue, ensure_indexes
from snipix.observability.metrics import Metrics
from snipix.retry import RetryPolicy
from tests.cache.test_service import Loader, redis_client
from tests.support import Clock, RedisServer, free_port

OWNER = "alice"
TTL = timedelta(minutes=6)


@dataclass
class Replicas:
    writer: Cache
    reader: Cache
    journal: DatabaseJournal
    redis: Redis
    db: Database
    clock: Clock
    prefix: str


def _cache(store: RedisStore, prefix: str, journal: DatabaseJournal, clock: Clock) -> Cache:
    return Cache(
        store,
        prefix=prefix,
        ttl_s=60,
        jitter=0,
        stale_s=600,
        policy=RetryPolicy(attempts=1),
        metrics=CacheMetrics(Metrics("test")),
        clock=clock,
        journal=journal,
    )


@pytest.fixture
async def replicas(db: Database, redis_server: RedisServer) -> AsyncIterator[Replicas]:
    await ensure_indexes(db, [spec for spec in catalogue() if spec.collection == COLLECTION])
    await db[COLLECTION].delete_many({})
    clock = Clock()
    journal = DatabaseJournal(db, ttl=TTL, clock=clock)
    prefix = f"t{uuid.uuid4().hex[:8]}"
    cut_off = redis_client(f"redis://127.0.0.1:{free_port()}/0")
    reachable = redis_client(redis_server.url, timeout_s=5)
    writer = _cache(RedisStore(cut_off), prefix, journal, clock)
    reader = _cache(RedisStore(reachable), prefix, journal, clock)
    # Start-up: the reader reads the (empty) journal before it serves anything.
    await reader.poll_journal()
    yield Replicas(writer, reader, journal, reachable, db, clock, prefix)
    await cut_off.aclose()
    await reachable.aclose()


async def _cached_version(replicas: Replicas, kind: str, entity_id: str) -> int | None:
    raw = await RedisStore(replicas.redis).get(replicas.reader.key(kind, entity_id))
    entry = Entry.decode(raw) if raw is not None else None
    return entry.version if entry is not None else None


async def test_an_invalidation_redis_refuses_is_recorded_before_invalidate_returns(
    replicas: Replicas,
) -> None:
    await replicas.writer.invalidate("project", "p1", 7)

    recorded = await replicas.db[COLLECTION].find_one({"_id": replicas.writer.key("project", "p1")})
    assert recorded is not None
    assert recorded["version"] == 7
    assert recorded["page"] is False
    # Bounded: the server removes it once no entry from before the write can be fresh.
    assert recorded["expiresAt"] == pytest.approx(replicas.clock() + TTL, abs=timedelta(seconds=5))
    assert replicas.writer.pending_invalidations == 1  # and held, for its own recovery


async def test_a_delivered_invalidation_is_not_recorded(replicas: Replicas) -> None:
    await replicas.reader.invalidate("project", "p1", 7)

    assert await replicas.db[COLLECTION].count_documents({}) == 0


async def test_another_replica_delivers_the_recorded_invalidation_on_its_next_poll(
    replicas: Replicas,
) -> None:
    """The old entry in Redis (version 1) gives way to the write's tombstone, so the reader
    loads the new state; the entry leaves the journal once Redis has it."""
    old = Loader(version=1, payload=b'{"name":"before"}')
    assert await replicas.reader.entity("project", "p1", OWNER, old) == Loaded(
        1, b'{"name":"before"}'
    )
    assert await _cached_version(replicas, "project", "p1") == 1

    await replicas.writer.invalidate("project", "p1", 2)
    # Before the poll the old entry is still what Redis holds: the gap the journal closes.
    assert await replicas.reader.entity("project", "p1", OWNER, old) == Loaded(
        1, b'{"name":"before"}'
    )

    await replicas.reader.poll_journal()

    assert await _cached_version(replicas, "project", "p1") == 2
    new = Loader(version=2, payload=b'{"name":"after"}')
    assert await replicas.reader.entity("project", "p1", OWNER, new) == Loaded(
        2, b'{"name":"after"}'
    )
    assert new.reads == 1
    assert await replicas.db[COLLECTION].count_documents({}) == 0


async def test_a_recorded_invalidation_never_removes_a_newer_entry(replicas: Replicas) -> None:
    """Delivered late, an invalidation at version 3 leaves the version-5 entry in place."""
    await replicas.writer.invalidate("project", "p1", 3)
    newer = Loader(version=5, payload=b'{"name":"newest"}')
    # The reader's start-up read is done: the version-5 entry is filled from the database.
    await replicas.reader.entity("project", "p1", OWNER, newer)
    assert await _cached_version(replicas, "project", "p1") == 5

    await replicas.reader.poll_journal()

    assert await _cached_version(replicas, "project", "p1") == 5
    assert await replicas.db[COLLECTION].count_documents({}) == 0


async def test_a_list_invalidation_is_delivered_as_a_new_generation(replicas: Replicas) -> None:
    loads = 0

    async def load() -> bytes:
        nonlocal loads
        loads += 1
        return b"[%d]" % loads

    assert await replicas.reader.page("projects", OWNER, "q", load) == b"[1]"
    assert await replicas.reader.page("projects", OWNER, "q", load) == b"[1]"

    await replicas.writer.invalidate_pages("projects", OWNER)
    await replicas.reader.poll_journal()

    assert await replicas.reader.page("projects", OWNER, "q", load) == b"[2]"


async def test_a_newer_record_of_the_key_survives_the_delete_of_an_older_one(
    replicas: Replicas,
) -> None:
    await replicas.journal.record("k", 1)
    (read,) = await replicas.journal.since(None, 10)
    await replicas.journal.record("k", 2)

    await replicas.journal.remove(read)

    (left,) = await replicas.journal.since(None, 10)
    assert (left.key, left.version) == ("k", 2)


async def test_records_out_of_order_keep_the_highest_version(replicas: Replicas) -> None:
    await replicas.journal.record("k", 4)
    await replicas.journal.record("k", 3)

    (left,) = await replicas.journal.since(None, 10)
    assert left.version == 4


async def test_a_restarted_reader_delivers_what_was_recorded_before_it_started(
    replicas: Replicas,
) -> None:
    """Nothing from Redis is served before the first read of the journal (start-up, or
    after Redis was out of reach): the write recorded meanwhile is delivered first."""
    old = Loader(version=1, payload=b'{"name":"before"}')
    await replicas.reader.entity("project", "p1", OWNER, old)
    await replicas.writer.invalidate("project", "p1", 2)
    store = RedisStore(replicas.redis)
    fresh = _cache(store, replicas.prefix, replicas.journal, replicas.clock)

    new = Loader(version=2, payload=b'{"name":"after"}')
    assert await fresh.entity("project", "p1", OWNER, new) == Loaded(2, b'{"name":"after"}')
    await fresh.poll_journal()
    assert await _cached_version(replicas, "project", "p1") == 2


async def test_a_backlog_is_delivered_a_page_per_tick_and_nothing_is_served_before_its_end(
    replicas: Replicas, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("snipix.cache.service.JOURNAL_PAGE", 2)
    old = Loader(version=1, payload=b'{"name":"before"}')
    await replicas.reader.entity("project", "p4", OWNER, old)
    for number in range(5):
        await replicas.writer.invalidate("project", f"p{number}", 2)
    fresh = _cache(RedisStore(replicas.redis), replicas.prefix, replicas.journal, replicas.clock)

    await fresh.poll_journal()
    assert await replicas.db[COLLECTION].count_documents({}) == 3
    # p4's old entry is still in Redis, and its record not yet read: not served.
    new = Loader(version=2, payload=b'{"name":"after"}')
    assert await fresh.entity("project", "p4", OWNER, new) == Loaded(2, b'{"name":"after"}')

    await fresh.poll_journal()
    await fresh.poll_journal()

    assert await replicas.db[COLLECTION].count_documents({}) == 0
    for number in range(5):
        assert await _cached_version(replicas, "project", f"p{number}") == 2


class _DownJournal:
    """A journal whose database does not answer."""

    async def record(self, key: str, version: int | None) -> None:
        raise AutoReconnect("database down")

    async def since(self, after: object, limit: int) -> list[Invalidation]:
        raise AutoReconnect("database down")

    async def remove(self, entry: Invalidation) -> None:
        raise AutoReconnect("database down")


async def test_a_poll_the_database_does_not_answer_is_skipped(redis_server: RedisServer) -> None:
    client = redis_client(redis_server.url, timeout_s=5)
    try:
        cache = Cache(
            RedisStore(client),
            prefix=f"t{uuid.uuid4().hex[:8]}",
            ttl_s=60,
            jitter=0,
            stale_s=600,
            policy=RetryPolicy(attempts=1),
            metrics=CacheMetrics(Metrics("test")),
            journal=_DownJournal(),
        )
        await cache.poll_journal()  # no error: the tick is skipped

        # Never read: what Redis holds may predate a recorded write, so it is not served.
        await cache.entity("project", "p1", OWNER, Loader(version=1))
        loader = Loader(version=1)
        await cache.entity("project", "p1", OWNER, loader)
        assert loader.reads == 1
    finally:
        await client.aclose()


async def test_a_record_the_database_refuses_fails_the_invalidation() -> None:
    """The write is then not answered as done (the client sees an error and reads again):
    answering it without the record would let another replica answer the old state."""
    client = redis_client(f"redis://127.0.0.1:{free_port()}/0")
    try:
        cache = Cache(
            RedisStore(client),
            prefix="t",
            ttl_s=60,
            jitter=0,
            stale_s=600,
            policy=RetryPolicy(attempts=1),
            metrics=CacheMetrics(Metrics("test")),
            journal=_DownJournal(),
        )
        with pytest.raises(AutoReconnect):
            await cache.invalidate("project", "p1", 2)
    finally:
        await client.aclose()


def test_the_journal_expires_by_a_ttl_index() -> None:
    (spec,) = [s for s in catalogue() if (s.collection, s.name) == (COLLECTION, EXPIRE_INDEX)]
    assert spec.keys == [("expiresAt", 1)]
    assert spec.options == {"expireAfterSeconds": 0}
