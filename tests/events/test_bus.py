"""The event bus on a real redis-server: across replicas (two buses), and with Redis hung
(SIGSTOP: silence, not errors), where publishing must neither fail nor wait."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from redis.asyncio import Redis

from snipix.events.bus import (
    RESYNC,
    Event,
    EventMetrics,
    RedisEventBus,
    Subscription,
    presence_event,
)
from snipix.observability.metrics import Metrics
from tests.support import RedisServer, free_port, until

TIMEOUT_S = 0.25


def failed(bus: RedisEventBus) -> float:
    return float(bus.metrics.events.labels(outcome="failed")._value.get())


@asynccontextmanager
async def bus_on(
    url: str, prefix: str, *, dead_after_s: float = 3.0, timeout_s: float = TIMEOUT_S
) -> AsyncIterator[RedisEventBus]:
    redis: Redis = Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    bus = RedisEventBus(
        redis,
        prefix=prefix,
        timeout_s=timeout_s,
        metrics=EventMetrics(Metrics("test")),
        dead_after_s=dead_after_s,
    )
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()
        await redis.aclose()


async def test_an_event_reaches_the_other_replica_once_and_this_one_at_once(
    redis_server: RedisServer,
) -> None:
    prefix = f"test_{uuid.uuid4().hex[:12]}"
    async with (
        bus_on(redis_server.url, prefix) as one,
        bus_on(redis_server.url, prefix) as two,
        one.subscribe("p1") as here,
        two.subscribe("p1") as there,
    ):
        event = Event("revision", {"version": 1}, id=1)
        await one.publish("p1", event)
        assert await here.next(30) == event
        assert await there.next(30) == event
        # Redis echoes the event to its sender too: it is not delivered twice.
        await one.publish("p1", Event("presence", {"userId": "u"}))
        assert (await here.next(30) or event).kind == "presence"
        assert (await there.next(30) or event).kind == "presence"
        # The other way; Redis keeps order, so an echo of the first two would come first.
        await two.publish("p1", Event("project", {}))
        assert (await there.next(30) or event).kind == "project"
        assert (await here.next(30) or event).kind == "project"


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, to hang."""
    server = RedisServer.find().start()
    yield server
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


@pytest.mark.process
async def test_a_hung_redis_never_fails_or_delays_a_publish_and_streams_resync_after(
    own_redis: RedisServer,
) -> None:
    assert own_redis.process is not None
    async with (
        bus_on(own_redis.url, "test", dead_after_s=0.3) as bus,
        bus.subscribe("p1") as stream,
    ):
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        loop = asyncio.get_running_loop()
        began = loop.time()
        for version in range(1, 51):
            await bus.publish("p1", Event("revision", {"version": version}, id=version))
        took = loop.time() - began
        # This replica's streams still get every event, in order, at once.
        got = [await stream.next(30) for _ in range(50)]
        assert [e.id for e in got if e is not None] == list(range(1, 51))
        assert took < TIMEOUT_S, f"50 publishes took {took:.3f} s with Redis hung"
        await until(lambda: failed(bus) > 0, what="the failed publish to be counted")
        await until(lambda: not bus.connected, what="the bus to notice the silence")

        os.kill(own_redis.process.pid, signal.SIGCONT)
        # Back: the stream is told it may have missed other replicas' events.
        resync = await stream.next(30)
        while resync is not None and resync.kind != RESYNC:
            resync = await stream.next(30)
        assert resync is not None
        assert resync.kind == RESYNC


async def presences(subscription: Subscription, count: int) -> list[tuple[str, bool]]:
    """The next `count` presence messages: (user, open)."""
    seen: list[tuple[str, bool]] = []
    while len(seen) < count:
        event = await subscription.next(30)
        assert event is not None
        if event.kind == "presence":
            seen.append((event.data["userId"], event.data["open"]))
    return seen


async def test_who_has_a_project_open_is_known_across_replicas(
    redis_server: RedisServer,
) -> None:
    prefix = f"test_{uuid.uuid4().hex[:12]}"
    async with (
        bus_on(redis_server.url, prefix) as one,
        bus_on(redis_server.url, prefix) as two,
        one.subscribe("p1") as alice_tab,
        one.subscribe("p1") as alice_other_tab,
        two.subscribe("p1") as bob_tab,
    ):
        await one.joined("p1", "alice")
        await one.joined("p1", "alice")
        assert await presences(bob_tab, 2) == [("alice", True), ("alice", True)]
        await two.joined("p1", "bob")
        # Bob's new stream hears his own opening, then replica one's roll call: Alice.
        assert await presences(bob_tab, 2) == [("bob", True), ("alice", True)]
        assert await presences(alice_tab, 3) == [("alice", True), ("alice", True), ("bob", True)]
        # A session save is presence too, and is not answered with a roll call.
        await two.publish("p1", presence_event("bob", open_=True, playhead_sec=3.0))
        assert await presences(bob_tab, 1) == [("bob", True)]
        # Replica one has it (an answer it sent would now precede anything it sends next).
        assert await presences(alice_tab, 1) == [("bob", True)]
        # Alice closes one of two tabs: still there. Then the other: gone.
        await one.left("p1", "alice")
        await one.left("p1", "alice")
        assert await presences(bob_tab, 1) == [("alice", False)]
        assert ("bob", True) in await presences(alice_other_tab, 3)


async def test_a_redis_that_refuses_does_not_hold_up_start_up() -> None:
    """With Redis down (nothing listening), a replica starts at once: the bus waits for its
    first connection attempt to end, not for its timeout (that is for a hung Redis)."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    async with asyncio.timeout(10), bus_on(url, "refused:", timeout_s=30) as bus:
        assert not bus.connected
