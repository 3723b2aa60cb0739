"""The cache-aside layer against a real redis-server and the in-process store."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta

import pytest
from pymongo.errors import AutoReconnect
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from snipix.cache.metrics import CacheMetrics
from snipix.cache.service import Cache, Loaded, request_outcome
from snipix.cache.store import CacheStore, MemoryStore, RedisStore
from snipix.observability.metrics import Metrics
from snipix.retry import RetryPolicy
from tests.support import Clock, RedisServer, free_port, until

OWNER = "alice"


def redis_client(url: str, timeout_s: float = 0.25) -> Redis:
    client: Redis = Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
    return client


JITTER = 0.1


def make_cache(
    store: CacheStore | None,
    *,
    ttl_s: float = 60,
    stale_s: float = 600,
    metrics: CacheMetrics | None = None,
    prefix: str | None = None,
    database_up: Callable[[], bool] = lambda: True,
    clock: Clock | None = None,
) -> Cache:
    return Cache(
        store,
        prefix=prefix or f"t{uuid.uuid4().hex[:8]}",
        ttl_s=ttl_s,
        jitter=JITTER,
        stale_s=stale_s,
        policy=RetryPolicy(attempts=2, base_s=0.01, cap_s=0.02, budget_s=1),
        metrics=metrics or CacheMetrics(Metrics("test")),
        database_up=database_up,
        clock=clock or Clock(),
    )


async def entity(
    cache: Cache,
    kind: str,
    entity_id: str,
    owner: str,
    load: Callable[[], Awaitable[Loaded | None]],
) -> bytes | None:
    """The payload a lookup returns (None: not found for this owner)."""
    found = await cache.entity(kind, entity_id, owner, load)
    return found.payload if found is not None else None


@pytest.fixture(params=["redis", "memory"])
async def store(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> AsyncIterator[CacheStore]:
    if request.param == "memory":
        yield MemoryStore(max_bytes=1 << 20)
        return
    # Loopback Redis answers in microseconds; a generous timeout keeps a loaded CI machine
    # from turning a slow reply into a cache outage these tests do not ask for.
    client = redis_client(redis_server.url, timeout_s=5)
    yield RedisStore(client)
    await client.aclose()


class Loader:
    """A database stand-in that counts reads and can be held mid-read."""

    def __init__(self, version: int = 1, payload: bytes = b'{"name":"v1"}') -> None:
        self.version = version
        self.payload = payload
        self.reads = 0
        self.gate: asyncio.Event | None = None
        self.error: BaseException | None = None

    async def __call__(self) -> Loaded | None:
        self.reads += 1
        version, payload = self.version, self.payload
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return Loaded(version, payload)


class LookupCounter:
    """A store that records which tasks have had an answer to their cache lookup."""

    def __init__(self, store: CacheStore) -> None:
        self._store = store
        self.name = store.name
        self.finished: set[asyncio.Task[object] | None] = set()

    async def get(self, key: str) -> bytes | None:
        value = await self._store.get(key)
        self.finished.add(asyncio.current_task())
        return value

    async def fill(self, key: str, value: bytes, version: int, ttl_ms: int) -> bool:
        return await self._store.fill(key, value, version, ttl_ms)

    async def page_get(self, key: str, field: str) -> tuple[str | None, bytes | None]:
        return await self._store.page_get(key, field)

    async def page_fill(
        self, key: str, seen: str | None, field: str, value: bytes, new_gen: str, ttl_ms: int
    ) -> bool:
        return await self._store.page_fill(key, seen, field, value, new_gen, ttl_ms)

    async def page_reset(self, key: str, new_gen: str, ttl_ms: int) -> None:
        await self._store.page_reset(key, new_gen, ttl_ms)

    async def flush_prefix(self, prefix: str) -> int:
        return await self._store.flush_prefix(prefix)

    async def ping(self) -> None:
        await self._store.ping()


def counts(metrics: CacheMetrics) -> dict[str, float]:
    return {
        kind: metrics.events.labels(kind=kind)._value.get()
        for kind in ("hit", "miss", "stale", "error")
    }


async def test_second_read_is_served_from_the_cache(store: CacheStore) -> None:
    """A project read twice costs one database read; the second is a hit."""
    metrics = CacheMetrics(Metrics("test"))
    cache = make_cache(store, metrics=metrics)
    load = Loader()
    assert await entity(cache, "project", "p1", OWNER, load) == b'{"name":"v1"}'
    assert await entity(cache, "project", "p1", OWNER, load) == b'{"name":"v1"}'
    assert load.reads == 1
    assert counts(metrics)["hit"] == 1
    assert counts(metrics)["miss"] == 1


async def test_concurrent_misses_cause_one_database_read(store: CacheStore) -> None:
    """Fifty requests for an uncached project at once make one database read."""
    looked_up = LookupCounter(store)
    cache = make_cache(looked_up)
    load = Loader()
    load.gate = asyncio.Event()
    tasks = [asyncio.create_task(entity(cache, "project", "p1", OWNER, load)) for _ in range(50)]
    # A task whose cache lookup has returned runs on, without yielding, into the single
    # flight; so once all fifty have looked up, all fifty are loading or waiting on the load.
    await until(
        lambda: len(looked_up.finished) == 50 and load.reads >= 1,
        what="all fifty lookups answered and the load started",
        interval_s=0,
    )
    load.gate.set()
    results = await asyncio.gather(*tasks)
    assert results == [b'{"name":"v1"}'] * 50
    assert load.reads == 1


async def test_another_owner_never_sees_a_cached_project(store: CacheStore) -> None:
    """A project cached for its owner is not found for anyone else."""
    cache = make_cache(store)
    await entity(cache, "project", "p1", OWNER, Loader())
    bob_load = Loader()
    bob_load.version = 99
    assert await entity(cache, "project", "p1", "bob", lambda: _none()) is None


async def _none() -> Loaded | None:
    return None


async def test_a_write_is_visible_at_once_on_every_replica(redis_server: RedisServer) -> None:
    """After a write invalidates on one replica, the other replica reads the new state."""
    clients = [redis_client(redis_server.url), redis_client(redis_server.url)]
    prefix = f"t{uuid.uuid4().hex[:8]}"
    one, two = (make_cache(RedisStore(c), prefix=prefix) for c in clients)
    old = Loader(1, b"v1")
    assert await entity(two, "project", "p1", OWNER, old) == b"v1"
    await one.invalidate("project", "p1", 2)
    new = Loader(2, b"v2")
    assert await entity(two, "project", "p1", OWNER, new) == b"v2"
    assert await entity(two, "project", "p1", OWNER, new) == b"v2"
    assert new.reads == 1
    for client in clients:
        await client.aclose()


async def read_held_at_the_database(
    cache: Cache, kind: str
) -> tuple[asyncio.Event, asyncio.Task[bytes | None]]:
    """A read of `p1` (version 1, b"old") that has reached the database and waits there
    until the test sets the returned gate."""
    slow = Loader(1, b"old")
    gate = slow.gate = asyncio.Event()
    reader = asyncio.create_task(entity(cache, kind, "p1", OWNER, slow))
    await until(
        lambda: slow.reads == 1, what="the old read to reach the database", interval_s=0.001
    )
    return gate, reader


async def test_a_read_that_started_before_a_write_cannot_cache_the_old_state(
    store: CacheStore,
) -> None:
    """The cache-aside race: an old read finishing after a write leaves no stale entry."""
    cache = make_cache(store)
    gate, reader = await read_held_at_the_database(cache, "project")
    # The write commits version 2 and invalidates while the old read is still running.
    await cache.invalidate("project", "p1", 2)
    gate.set()
    assert await reader == b"old"  # that request saw the database before the write
    fresh = Loader(2, b"new")
    assert await entity(cache, "project", "p1", OWNER, fresh) == b"new"
    assert fresh.reads == 1


async def test_a_written_through_state_is_read_on_every_replica_without_a_load(
    redis_server: RedisServer,
) -> None:
    """A write that replaces the entry with its own state: the other replica reads that
    state from the cache, with no database read."""
    clients = [redis_client(redis_server.url), redis_client(redis_server.url)]
    prefix = f"t{uuid.uuid4().hex[:8]}"
    one, two = (make_cache(RedisStore(c), prefix=prefix) for c in clients)
    assert await entity(two, "timeline", "p1", OWNER, Loader(1, b"v1")) == b"v1"
    await one.replace("timeline", "p1", OWNER, 2, lambda: b"v2")
    load = Loader(2, b"from the database")
    assert await entity(two, "timeline", "p1", OWNER, load) == b"v2"
    assert load.reads == 0
    for client in clients:
        await client.aclose()


async def test_a_read_that_started_before_a_write_through_cannot_replace_it(
    store: CacheStore,
) -> None:
    """The cache-aside race against a write-through: the old read's fill is refused, and
    an older write's late replace too."""
    cache = make_cache(store)
    gate, reader = await read_held_at_the_database(cache, "timeline")
    await cache.replace("timeline", "p1", OWNER, 3, lambda: b"v3")
    gate.set()
    assert await reader == b"old"  # that request saw the database before the write
    await cache.replace("timeline", "p1", OWNER, 2, lambda: b"v2")  # a slower replica
    load = Loader(3, b"from the database")
    assert await entity(cache, "timeline", "p1", OWNER, load) == b"v3"
    assert load.reads == 0


async def test_list_pages_change_generation_on_every_write(store: CacheStore) -> None:
    """A list page is cached until the owner changes a project, then read again."""
    cache = make_cache(store)
    reads = 0

    async def page() -> bytes:
        nonlocal reads
        reads += 1
        return f"page{reads}".encode()

    assert await cache.page("projects", OWNER, "q", page) == b"page1"
    assert await cache.page("projects", OWNER, "q", page) == b"page1"
    await cache.invalidate_pages("projects", OWNER)
    assert await cache.page("projects", OWNER, "q", page) == b"page2"
    assert await cache.page("projects", "bob", "q", page) == b"page3"
    assert reads == 3


async def test_a_list_read_racing_a_write_is_not_cached(store: CacheStore) -> None:
    """A list page loaded before a write is not stored after it."""
    cache = make_cache(store)
    gate = asyncio.Event()

    loading = asyncio.Event()

    async def slow() -> bytes:
        loading.set()
        await gate.wait()
        return b"before"

    reader = asyncio.create_task(cache.page("projects", OWNER, "q", slow))
    await until(loading.is_set, what="the list read to reach the database", interval_s=0.001)
    await cache.invalidate_pages("projects", OWNER)
    gate.set()
    assert await reader == b"before"

    async def after() -> bytes:
        return b"after"

    assert await cache.page("projects", OWNER, "q", after) == b"after"


async def test_expired_entry_is_served_stale_while_the_database_is_down(
    store: CacheStore,
) -> None:
    """Past its TTL, a cached project is still served (stale) when the database fails."""
    metrics = CacheMetrics(Metrics("test"))
    clock = Clock()
    cache = make_cache(store, ttl_s=60, stale_s=600, metrics=metrics, clock=clock)
    await entity(cache, "project", "p1", OWNER, Loader(1, b"v1"))
    clock.advance(timedelta(seconds=60 * (1 + JITTER) + 1))  # past the longest jittered TTL
    down = Loader()
    down.error = AutoReconnect("connection refused")
    assert await entity(cache, "project", "p1", OWNER, down) == b"v1"
    assert request_outcome() == "stale"
    assert counts(metrics)["stale"] == 1
    # Nothing cached for this project: the database error reaches the caller.
    with pytest.raises(AutoReconnect):
        await entity(cache, "project", "p2", OWNER, down)


async def test_fresh_hits_are_marked_stale_when_the_database_is_known_down(
    store: CacheStore,
) -> None:
    """While the driver reports no primary, even fresh hits are flagged as possibly stale."""
    database = {"up": True}
    cache = make_cache(store, database_up=lambda: database["up"])
    await entity(cache, "project", "p1", OWNER, Loader())
    database["up"] = False
    assert await entity(cache, "project", "p1", OWNER, Loader()) == b'{"name":"v1"}'
    assert request_outcome() == "stale"


async def test_memory_store_stays_within_its_byte_bound() -> None:
    """The in-process cache evicts least recently used entries past its size limit."""
    store = MemoryStore(max_bytes=20_000)
    cache = make_cache(store)
    payload = b"x" * 1_000
    for number in range(100):
        await entity(cache, "project", f"p{number}", OWNER, Loader(1, payload))
        assert store.bytes_held <= 20_000
    recent = Loader(1, payload)
    await entity(cache, "project", "p99", OWNER, recent)
    assert recent.reads == 0  # the most recent entry is still there
    oldest = Loader(1, payload)
    await entity(cache, "project", "p0", OWNER, oldest)
    assert oldest.reads == 1  # the oldest was evicted


async def test_unreachable_redis_costs_nothing_but_the_cache(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With Redis unreachable every read goes to the database, without an error, and the
    outage is logged once."""
    metrics = CacheMetrics(Metrics("test"))
    client = redis_client(f"redis://127.0.0.1:{free_port()}/0")
    cache = make_cache(RedisStore(client), metrics=metrics)
    load = Loader()
    for _ in range(20):
        assert await entity(cache, "project", "p1", OWNER, load) == b'{"name":"v1"}'
    await cache.invalidate("project", "p1", 2)
    assert load.reads == 20
    assert counts(metrics)["error"] >= 1
    assert not cache.available
    output = capsys.readouterr()
    logged = output.out + output.err
    assert logged.count("cache unavailable") == 1
    await client.aclose()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer.find().start()
    yield server
    if server.process is not None and server.process.poll() is None:
        os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


@pytest.mark.process
async def test_invalidations_missed_during_an_outage_are_delivered_first(
    own_redis: RedisServer,
) -> None:
    """A write made while Redis hung cannot leave its old state readable when Redis
    comes back: the held invalidation is delivered before the cache is read again."""
    client = redis_client(own_redis.url, timeout_s=0.2)
    prefix = f"t{uuid.uuid4().hex[:8]}"
    cache = make_cache(RedisStore(client), prefix=prefix)
    other_client = redis_client(own_redis.url, timeout_s=0.2)
    other_replica = make_cache(RedisStore(other_client), prefix=prefix)
    assert await entity(cache, "project", "p1", OWNER, Loader(1, b"v1")) == b"v1"
    assert own_redis.process is not None
    os.kill(own_redis.process.pid, signal.SIGSTOP)  # hung, not dead: data kept
    try:
        await cache.invalidate("project", "p1", 2)  # the write's invalidation times out
        assert cache.pending_invalidations == 1
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
    stop = asyncio.Event()
    recovery = asyncio.create_task(cache.run_recovery(stop, interval_s=0.05))

    async def delivered() -> bool:
        return cache.pending_invalidations == 0

    await until(delivered, what="the held invalidation delivered", deadline_s=15, interval_s=0.05)
    stop.set()
    await recovery
    # Another replica, which never saw the outage, reads the new state.
    assert await entity(other_replica, "project", "p1", OWNER, Loader(2, b"v2")) == b"v2"
    assert cache.available
    await client.aclose()
    await other_client.aclose()


@pytest.mark.process
async def test_caching_resumes_when_redis_returns(own_redis: RedisServer) -> None:
    """After Redis restarts, reads are cached again without restarting the service."""
    client = redis_client(own_redis.url)
    cache = make_cache(RedisStore(client))
    own_redis.stop()
    load = Loader()
    await entity(cache, "project", "p1", OWNER, load)
    assert not cache.available
    own_redis.start()

    async def cached_again() -> bool:
        # A read that fills (for a while after the return, every read loads: see
        # Cache._trusted), then one the cache answers without the database.
        await entity(cache, "project", "p1", OWNER, load)
        before = load.reads
        await entity(cache, "project", "p1", OWNER, load)
        return load.reads == before and cache.available

    recovered_s = await until(cached_again, what="caching again", deadline_s=15, interval_s=0.05)
    assert recovered_s < 12
    await client.aclose()
