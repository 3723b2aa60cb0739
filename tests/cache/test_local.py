"""The in-process layer in front of Redis: hits without a round trip, never a stale read
after a write on another replica (Redis client tracking), off when tracking is lost."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from snipix.cache.entries import Entry
from snipix.cache.local import LocalLayer
from snipix.cache.metrics import CacheMetrics
from snipix.cache.service import Cache, Loaded
from snipix.cache.store import RedisStore
from snipix.observability.metrics import Metrics
from snipix.retry import RetryPolicy
from tests.support import RedisServer, until

OWNER = "alice"


class Replica:
    def __init__(self, url: str, prefix: str) -> None:
        self.client: Redis = Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )
        self.local = LocalLayer(url, prefix, timeout_s=0.5)
        self.cache = Cache(
            RedisStore(self.client),
            prefix=prefix,
            ttl_s=60,
            jitter=0,
            stale_s=60,
            policy=RetryPolicy(attempts=1),
            metrics=CacheMetrics(Metrics("test")),
            local=self.local,
        )

    async def start(self) -> Replica:
        await self.cache.track()
        assert self.local.active
        # As the app's lifespan does: the loop that sends the local layer's heartbeats.
        self._stop = asyncio.Event()
        self._loop = asyncio.create_task(self.cache.run_recovery(self._stop))
        return self

    async def close(self) -> None:
        self._stop.set()
        await self._loop
        self.local.close()
        await self.client.aclose()


async def gets(client: Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


@pytest.fixture
async def replicas(redis_server: RedisServer) -> AsyncIterator[tuple[Replica, Replica]]:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    one = await Replica(redis_server.url, prefix).start()
    two = await Replica(redis_server.url, prefix).start()
    yield one, two
    await one.close()
    await two.close()


async def read(replica: Replica, version: int, payload: bytes) -> bytes | None:
    async def load() -> Loaded:
        return Loaded(version, payload)

    found = await replica.cache.entity("project", "p1", OWNER, load)
    return found.payload if found is not None else None


async def test_repeated_reads_are_served_without_a_redis_round_trip(
    replicas: tuple[Replica, Replica],
) -> None:
    """Once a project is held locally, reading it again costs no Redis command."""
    one, _ = replicas
    assert await read(one, 1, b"v1") == b"v1"  # miss: database, fill
    assert await read(one, 1, b"v1") == b"v1"  # Redis hit, now held locally
    before = await gets(one.client)
    for _ in range(50):
        assert await read(one, 1, b"v1") == b"v1"
    assert await gets(one.client) == before
    assert len(one.local) == 1


async def test_a_write_on_one_replica_is_never_read_stale_on_another(
    replicas: tuple[Replica, Replica],
) -> None:
    """Replica two holds v1 locally; replica one writes v2: two's very next read is v2."""
    one, two = replicas
    for round_number in range(1, 30):
        held = f"v{round_number}".encode()
        assert await read(two, round_number, held) == held
        assert await read(two, round_number, held) == held  # held locally from here
        await one.cache.invalidate("project", "p1", round_number + 1)
        fresh = f"v{round_number + 1}".encode()
        # No sleep: the invalidation was pushed before the write's answer came back.
        assert await read(two, round_number + 1, fresh) == fresh


async def test_a_write_after_a_backlog_of_invalidations_is_not_read_stale(
    redis_server: RedisServer,
) -> None:
    """Replica two reads nothing while many keys change: more invalidations than its socket
    holds, so Redis keeps the rest (the write's among them) until two reads. Two's next
    read still must not answer the old value."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    one = await Replica(redis_server.url, prefix).start()
    two = await Replica(redis_server.url, prefix).start()
    try:
        for round_number in range(1, 3):
            held = f"v{round_number}".encode()
            assert await read(two, round_number, held) == held
            assert await read(two, round_number, held) == held  # held locally from here
            burst = one.client.pipeline(transaction=False)
            for number in range(20_000):
                burst.set(f"{prefix}:other:{round_number}-{number}", b"x")
            await burst.execute()
            await one.cache.invalidate("project", "p1", round_number + 1)
            fresh = f"v{round_number + 1}".encode()
            assert await read(two, round_number + 1, fresh) == fresh
    finally:
        await one.close()
        await two.close()


async def test_an_answer_older_than_an_invalidation_is_not_kept() -> None:
    """A Redis answer read before an invalidation arrived is not held locally."""
    layer = LocalLayer("redis://127.0.0.1:1/0", "t", timeout_s=0.1, monotonic=lambda: 0.0)
    layer._sock = object()  # type: ignore[assignment]  # as if tracking were on
    layer._confirmed = 0.0  # and a heartbeat just answered
    layer.drain = lambda: None  # type: ignore[method-assign]
    sequence = layer.sequence
    layer.evict("t:project:p1")  # an invalidation arrives while the GET is in flight
    layer.put("t:project:p1", Entry(1, 2**62, OWNER, b"old"), sequence)
    assert layer.get("t:project:p1") is None
    layer.put("t:project:p1", Entry(2, 2**62, OWNER, b"new"), layer.sequence)
    held = layer.get("t:project:p1")
    assert held is not None
    assert held.payload == b"new"
    layer._sock = None


async def test_losing_tracking_turns_the_layer_off_and_empties_it(
    redis_server: RedisServer,
) -> None:
    """When Redis drops the tracking connection nothing held can be served any more."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    replica = await Replica(redis_server.url, prefix).start()
    try:
        await read(replica, 1, b"v1")
        await read(replica, 1, b"v1")
        assert len(replica.local) == 1
        # The tracking connection is the client with the `t` (tracking) flag.
        for client in await replica.client.client_list():
            if "t" in client.get("flags", ""):
                await replica.client.client_kill_filter(_id=client["id"])

        def tracking_lost() -> bool:
            replica.local.drain()  # reads what arrived; the closed socket turns the layer off
            return not replica.local.active

        await until(tracking_lost, what="the layer to see its tracking connection closed")
        assert not replica.local.active
        assert len(replica.local) == 0
        # Reads still answer, from Redis, and tracking comes back.
        assert await read(replica, 1, b"v1") == b"v1"
        await replica.cache.track()
        assert replica.local.active
        # Changes made meanwhile may still be on their way to Redis: one bound before
        # anything cached is served again.
        assert replica.local.distrust_until > time.monotonic()
    finally:
        await replica.close()


class Monotonic:
    """A monotonic clock the test moves: "a second later" without waiting a second."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own: it is stopped with SIGSTOP, which the worker's
    shared one must never be."""
    server = RedisServer.find().start()
    try:
        yield server
    finally:
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGCONT)
        server.stop()


def send_set(port: int, key: str, value: str) -> socket.socket:
    """A SET written to Redis without waiting for its answer (Redis may be stopped)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    command = f"*3\r\n$3\r\nSET\r\n${len(key)}\r\n{key}\r\n${len(value)}\r\n{value}\r\n"
    sock.sendall(command.encode())
    return sock


@pytest.mark.process
async def test_a_silent_tracking_connection_stops_local_answers_within_the_bound(
    own_redis: RedisServer,
) -> None:
    """A stopped (SIGSTOP) Redis sends no invalidation, and nothing says so: silence must
    not pass for "nothing changed". Past the bound without an answered heartbeat the layer
    answers nothing; once Redis is back, an answered heartbeat makes it answer again, with
    every change acknowledged before that heartbeat applied."""
    assert own_redis.process is not None
    clock = Monotonic()
    prefix = f"t{uuid.uuid4().hex[:8]}"
    layer = LocalLayer(own_redis.url, prefix, timeout_s=0.5, max_lag_s=1.0, monotonic=clock)
    kept, written = f"{prefix}:project:kept", f"{prefix}:project:written"
    try:
        assert layer.connect()
        for key in (kept, written):
            layer.put(key, Entry(1, 2**62, OWNER, b"v1"), layer.sequence)
        assert layer.get(kept) is not None
        assert layer.get(written) is not None

        os.kill(own_redis.process.pid, signal.SIGSTOP)
        clock.now += 0.3
        layer.heartbeat()  # never answered while Redis is stopped
        writer = send_set(own_redis.port, written, "v2")  # queued, not executed
        clock.now += 0.6
        assert layer.get(kept) is not None  # within the bound
        clock.now += 0.4  # 1.3 s since the last confirmation, 1.0 since the PING
        layer.heartbeat()  # the recovery loop's tick: sees the silence
        assert layer.get(kept) is None
        assert layer.get(written) is None
        assert layer.active  # still tracking: only not answering

        os.kill(own_redis.process.pid, signal.SIGCONT)
        writer.settimeout(10)
        assert writer.recv(16).startswith(b"+OK")  # the write is acknowledged
        writer.close()
        clock.now += 0.1
        layer.heartbeat()  # sent after the acknowledgement

        def all_answered() -> bool:
            layer.drain()
            return layer.unanswered == 0

        await until(all_answered, what="Redis to answer the heartbeats")
        # Answered, but Redis was silent: another replica may still hold an invalidation
        # it could not deliver, so the layer waits one more bound, beating as the loop does.
        assert layer.get(kept) is None
        for _ in range(3):
            clock.now += 0.25
            layer.heartbeat()
            await until(all_answered, what="Redis to answer a heartbeat")
            assert layer.get(kept) is None
        clock.now += 0.25
        layer.heartbeat()
        await until(all_answered, what="Redis to answer a heartbeat")
        # The write's invalidation came before the heartbeat's answer.
        assert layer.get(written) is None
        held = layer.get(kept)
        assert held is not None
        assert held.payload == b"v1"
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
        layer.close()


@pytest.mark.process
async def test_a_hung_redis_sends_a_replicas_reads_to_the_database_within_the_bound(
    own_redis: RedisServer,
) -> None:
    """Two replicas with their recovery loops (heartbeats) running; Redis is stopped and
    replica one writes: replica two's reads stop coming from memory within the bound and
    answer what the database has."""
    assert own_redis.process is not None
    prefix = f"t{uuid.uuid4().hex[:8]}"
    one = await Replica(own_redis.url, prefix).start()
    two = await Replica(own_redis.url, prefix).start()
    loop = asyncio.get_running_loop()
    try:
        assert await read(two, 1, b"v1") == b"v1"
        assert await read(two, 1, b"v1") == b"v1"
        assert len(two.local) == 1
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        await one.cache.invalidate("project", "p1", 2)  # times out: held by replica one
        assert one.cache.pending_invalidations == 1
        written_at = loop.time()
        bound = 1.0  # SNIPIX_CACHE_LOCAL_MAX_LAG_MS' default
        # Two answers v1 from memory at most until the bound, then v2 (its database).

        async def moved_on() -> bool:
            answer = await read(two, 2, b"v2")
            assert answer == b"v2" or loop.time() - written_at < bound + 0.5, (
                "v1 served past the bound"
            )
            return answer == b"v2"

        await until(moved_on, what="replica two to answer v2", interval_s=0.02)
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
        await one.close()
        await two.close()


async def test_a_stalled_event_loop_is_not_taken_for_a_silent_redis(
    redis_server: RedisServer,
) -> None:
    """Our own loop stalling past the bound (no heartbeat sent meanwhile) stops local
    answers only until the next heartbeat is answered: Redis did answer, so there is no
    silence and no settle period after it."""
    clock = Monotonic()
    prefix = f"t{uuid.uuid4().hex[:8]}"
    layer = LocalLayer(redis_server.url, prefix, timeout_s=0.5, max_lag_s=1.0, monotonic=clock)
    key = f"{prefix}:project:p1"
    try:
        assert layer.connect()
        layer.put(key, Entry(1, 2**62, OWNER, b"v1"), layer.sequence)
        layer.heartbeat()

        def answer_waiting() -> bool:
            sock = layer._sock
            assert sock is not None
            return bool(select.select([sock], [], [], 0)[0])

        await until(answer_waiting, what="the PONG to arrive")
        clock.now += 2.0  # the stall: the PONG waited, unread
        layer.heartbeat()  # reads it, sends the next one
        assert layer.unanswered == 1
        assert layer.distrust_until == float("-inf")
        await until(lambda: layer.get(key) is not None, what="the next heartbeat's answer")
    finally:
        layer.close()
