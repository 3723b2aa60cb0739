"""Project events, fanned out to every stream open on a project, on this replica and others.

A save publishes after its commit (`publish(project_id, event)`); each open event stream
holds a `Subscription` (`subscribe(project_id)`). The in-process bus delivers to this
replica's subscriptions only: the mode without Redis, where there is one replica. The Redis
bus also sends each event over Redis pub/sub to the other replicas, on one subscriber
connection per replica that carries every channel (project) this replica has a stream for,
so a thousand open tabs cost Redis one connection, not a thousand.

Publishing never fails and never waits for Redis: the event is delivered to this replica's
streams at once and queued (bounded) for one sender task that publishes with a timeout; an
event that cannot be sent is dropped, logged and counted (`snipix_events_total{outcome}`).
A save is never slower, let alone refused, because Redis is down or hung.

What a stream may miss while Redis is out of reach (or because it read too slowly) it is
told about with a `RESYNC` marker when the bus knows it missed something; it then re-reads
the revision history after the last version it sent, so no timeline revision is lost. Other
kinds (presence, project and transcript changes) are notices, not history: they are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson
import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from snipix.observability.metrics import Metrics, zeroed

log = structlog.get_logger(__name__)

EventKind = Literal["revision", "project", "transcript", "presence", "membership"]
# Internal markers, never sent to a client as such.
RESYNC: Final = "_resync"
CLOSED: Final = "_closed"

# The lifespan state key of the bus's `stop_streams`, which `snipix serve` calls when it
# starts shutting down (its connections see the state, not the app).
STOP_STREAMS: Final = "stop_event_streams"
# Events waiting in one stream's queue; past it the stream is told to re-read history.
SUBSCRIPTION_QUEUE: Final = 256
# Events waiting for the sender task; past it new ones are dropped (and counted).
OUTBOX_SIZE: Final = 10_000
# The subscriber connection silent this long (it is pinged every third of it): replaced.
DEAD_AFTER_S: Final = 3.0
# Waits between attempts to reach Redis again, doubling up to the cap.
RECONNECT_BASE_S: Final = 0.1
RECONNECT_CAP_S: Final = 5.0

Outcome = Literal["published", "delivered", "dropped", "failed"]
OUTCOMES: tuple[Outcome, ...] = ("published", "delivered", "dropped", "failed")


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened to a project. `id` is the timeline version for revisions
    (the SSE id a reconnecting client sends back as Last-Event-ID), None for the rest."""

    kind: str
    data: dict[str, Any]
    id: int | None = None


def presence_event(
    user_id: str,
    *,
    open_: bool,
    playhead_sec: float | None = None,
    selected_clip_ids: list[str] | None = None,
    panel: str | None = None,
    joined: bool = False,
    roll_call: bool = False,
) -> Event:
    """A member's presence: whether they have the project open (an event stream), or
    where their playhead and selection are (a session save). `joined`: a stream of theirs
    just opened (every replica answers with who else is there); `rollCall`: such an
    answer."""
    data: dict[str, Any] = {
        "userId": user_id,
        "open": open_,
        "playheadSec": playhead_sec,
        "selectedClipIds": selected_clip_ids,
        "panel": panel,
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    if joined:
        data["joined"] = True
    if roll_call:
        data["rollCall"] = True
    return Event("presence", data)


class EventMetrics:
    """`snipix_events_total{outcome}`: published to Redis, delivered to a local stream,
    dropped (an outbox or stream queue full), failed (Redis refused or timed out);
    `snipix_event_streams`: streams open on this replica."""

    def __init__(self, metrics: Metrics) -> None:
        self.events = metrics.counter(
            "snipix_events",
            "Project events by outcome: published (to Redis), delivered (to a stream on "
            "this replica), dropped (a queue full), failed (Redis refused or timed out).",
            ["outcome"],
        )
        self._children = zeroed(self.events, "outcome", OUTCOMES)
        self.streams = metrics.gauge("snipix_event_streams", "Event streams open on this replica.")

    def count(self, outcome: Outcome, n: int = 1) -> None:
        self._children[outcome].inc(n)


@dataclass(eq=False)
class Subscription:
    """One stream's view of a project's events, in the order this replica received them."""

    project_id: str
    queue: asyncio.Queue[Event] = field(
        default_factory=lambda: asyncio.Queue(maxsize=SUBSCRIPTION_QUEUE)
    )

    def offer(self, event: Event) -> bool:
        """Queue `event`; when the stream has fallen that far behind, replace what it has
        not read with one RESYNC (it re-reads history). False when something was dropped."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(Event(RESYNC, {}))
            return False
        return True

    def end(self) -> None:
        """The stream must finish (shutdown): CLOSED gets through even to a full queue."""
        while self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(Event(CLOSED, {}))

    async def next(self, timeout_s: float) -> Event | None:
        """The next event, or None when none came within `timeout_s`."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout_s)
        except TimeoutError:
            return None


class EventBus:
    """The in-process bus: this replica's streams only (the mode without Redis)."""

    backend = "memory"

    def __init__(self, metrics: EventMetrics) -> None:
        self.metrics = metrics
        self._subscriptions: dict[str, set[Subscription]] = {}
        # Who has each project open on this replica (streams per user).
        self._present: dict[str, Counter[str]] = {}
        # Per project with streams: done once its channel is subscribed (Redis confirmed).
        self._listening: dict[str, asyncio.Future[None]] = {}
        self._closed = False

    @classmethod
    def unobserved(cls) -> EventBus:
        """A bus with no stream and private metrics: services built outside the app (the
        CLI, jobs, tests of one service) publish into it and nobody listens."""
        return cls(EventMetrics(Metrics("unknown")))

    @property
    def closed(self) -> bool:
        return self._closed

    async def start(self) -> None:
        """Start what the bus runs in the background (nothing in process)."""

    async def publish(self, project_id: str, event: Event) -> None:
        """Send `event` to every stream of the project; never raises, never waits long."""
        self._deliver(project_id, event)

    async def on_membership_change(self, project_id: str, user_id: str) -> None:
        """A member was added, changed or removed: every stream of the project re-checks
        its user's access (a removed member's ends) and clients learn who changed."""
        await self.publish(project_id, Event("membership", {"userId": user_id}))

    @contextlib.asynccontextmanager
    async def subscribe(self, project_id: str) -> AsyncIterator[Subscription]:
        """A subscription that receives every event published from the moment this
        returns (on every replica, with Redis, as soon as Redis confirmed it)."""
        subscription = Subscription(project_id)
        if self._closed:
            subscription.end()
        first = project_id not in self._subscriptions
        self._subscriptions.setdefault(project_id, set()).add(subscription)
        try:
            if first:
                listening = asyncio.get_running_loop().create_future()
                self._listening[project_id] = listening
                try:
                    await self._listen(project_id)
                finally:
                    listening.set_result(None)
            else:
                # A second stream of the project returns no sooner than the first: both
                # read the history only once Redis confirmed the channel.
                pending = self._listening.get(project_id)
                if pending is not None:
                    await asyncio.shield(pending)
            yield subscription
        finally:
            remaining = self._subscriptions.get(project_id)
            if remaining is not None:
                remaining.discard(subscription)
                if not remaining:
                    del self._subscriptions[project_id]
                    self._listening.pop(project_id, None)
                    await self._unlisten(project_id)

    async def joined(self, project_id: str, user_id: str) -> None:
        """A stream of `user_id` opened on the project: everyone is told, and the new
        stream learns who else has it open (this replica's users at once; the other
        replicas answer the announcement with theirs, a roll call)."""
        present = self._present.setdefault(project_id, Counter())
        others = [user for user in present if user != user_id]
        present[user_id] += 1
        await self.publish(project_id, presence_event(user_id, open_=True, joined=True))
        for user in others:
            self._deliver(project_id, presence_event(user, open_=True, roll_call=True))

    async def left(self, project_id: str, user_id: str) -> None:
        """A stream of `user_id` ended: when it was their last one here, everyone is told
        (another tab of theirs on another replica answers the next roll call)."""
        present = self._present.get(project_id)
        if present is None or present[user_id] <= 0:
            return
        present[user_id] -= 1
        if present[user_id] > 0:
            return
        del present[user_id]
        if not present:
            del self._present[project_id]
        await self.publish(project_id, presence_event(user_id, open_=False))

    def _answer_roll_call(self, project_id: str, event: Event) -> list[Event]:
        """Another replica's stream opened: this replica's present users, to send back
        (only for an opening: a session save is presence too, and frequent)."""
        if event.kind != "presence" or not event.data.get("joined"):
            return []
        joined = event.data.get("userId")
        present = self._present.get(project_id, Counter())
        return [
            presence_event(user, open_=True, roll_call=True) for user in present if user != joined
        ]

    async def close(self) -> None:
        """End every stream (shutdown) and stop what runs in the background."""
        self.stop_streams()

    def stop_streams(self) -> None:
        """The server is stopping (`snipix serve` calls this before it drains connections,
        the lifespan at the latest): every stream gets CLOSED and finishes its response,
        so the drain does not wait for them, and no new stream starts. Called once per
        connection by the server: only the first call does anything."""
        if self._closed:
            return
        self._closed = True
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                subscription.end()

    async def _listen(self, project_id: str) -> None:
        """Receive the project's events from other replicas (nothing to do in process)."""

    async def _unlisten(self, project_id: str) -> None:
        """Stop receiving them."""

    def _deliver(self, project_id: str, event: Event) -> None:
        for subscription in self._subscriptions.get(project_id, ()):
            if subscription.offer(event):
                self.metrics.count("delivered")
            else:
                self.metrics.count("dropped")

    def _resync_all(self) -> None:
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                subscription.offer(Event(RESYNC, {}))


def _encode(origin: str, project_id: str, event: Event) -> bytes:
    return orjson.dumps(
        {"o": origin, "p": project_id, "k": event.kind, "i": event.id, "d": event.data}
    )


class RedisEventBus(EventBus):
    """Events across replicas through Redis pub/sub (channel `{prefix}:events:{project}`).

    This replica's own events go to its streams directly and are skipped when Redis echoes
    them back (each message names the replica that sent it), so the streams of the replica
    that saved get the event even with Redis down, and once.
    """

    backend = "redis"

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        timeout_s: float,
        metrics: EventMetrics,
        dead_after_s: float = DEAD_AFTER_S,
    ) -> None:
        super().__init__(metrics)
        # Silence on the subscriber connection for this long (pinged every third of it)
        # means Redis hangs: the connection is replaced and the streams resync after.
        self._dead_after_s = dead_after_s
        self._redis = redis
        self._prefix = f"{prefix}:events:"
        self._control = f"{self._prefix}_"
        self._timeout_s = timeout_s
        self._origin = uuid.uuid4().hex
        self._outbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=OUTBOX_SIZE)
        self._pubsub: PubSub | None = None
        # Channels Redis confirmed on the current connection; waiters for a confirmation.
        self._confirmed: set[str] = set()
        self._waiting: dict[str, list[asyncio.Future[None]]] = {}
        self._connected = asyncio.Event()
        # Set once the first connection attempt has ended, however it ended.
        self._first_attempt = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._sending_failed = False

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._receive(), name="events-receive"),
            asyncio.create_task(self._send(), name="events-send"),
        ]
        # The first streams should not start unsubscribed; a Redis that does not answer
        # delays start-up by one timeout at most, one that refuses not at all (the receiver
        # keeps trying).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_attempt.wait(), self._timeout_s)

    async def publish(self, project_id: str, event: Event) -> None:
        self._deliver(project_id, event)
        self._enqueue(project_id, event)

    def _enqueue(self, project_id: str, event: Event) -> None:
        try:
            self._outbox.put_nowait(
                (self._prefix + project_id, _encode(self._origin, project_id, event))
            )
        except asyncio.QueueFull:
            self.metrics.count("dropped")

    async def close(self) -> None:
        await super().close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._drop_connection()

    async def _send(self) -> None:
        """Publish the outbox in order, each with a timeout; a failure costs that event."""
        while True:
            channel, payload = await self._outbox.get()
            try:
                await asyncio.wait_for(self._redis.publish(channel, payload), self._timeout_s)
            except Exception as error:  # noqa: BLE001 - any Redis failure: drop, log, count
                self.metrics.count("failed")
                if not self._sending_failed:
                    self._sending_failed = True
                    log.warning("event publish failed", error=type(error).__name__)
                continue
            self.metrics.count("published")
            if self._sending_failed:
                self._sending_failed = False
                log.info("event publishing recovered")

    async def _listen(self, project_id: str) -> None:
        channel = self._prefix + project_id
        pubsub = self._pubsub
        if pubsub is None or not self._connected.is_set():
            # Redis out of reach: the stream starts with this replica's events; when the
            # connection returns the channel is subscribed and the stream re-reads history.
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(channel, []).append(waiter)
        try:
            await asyncio.wait_for(pubsub.subscribe(channel), self._timeout_s)
            await asyncio.wait_for(asyncio.shield(waiter), self._timeout_s)
        except Exception as error:  # noqa: BLE001 - degrade: the receiver reconnects
            log.warning("event subscribe failed", error=type(error).__name__)
        finally:
            waiters = self._waiting.get(channel, [])
            if waiter in waiters:
                waiters.remove(waiter)

    async def _unlisten(self, project_id: str) -> None:
        channel = self._prefix + project_id
        self._confirmed.discard(channel)
        pubsub = self._pubsub
        if pubsub is None or not self._connected.is_set():
            return
        try:
            await asyncio.wait_for(pubsub.unsubscribe(channel), self._timeout_s)
        except Exception as error:  # noqa: BLE001 - the receiver reconnects
            log.warning("event unsubscribe failed", error=type(error).__name__)

    async def _drop_connection(self) -> None:
        self._connected.clear()
        self._confirmed.clear()
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            # Closing a connection to a hung server must not hang too.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pubsub.aclose(), self._timeout_s)

    async def _receive(self) -> None:
        """Hold the subscriber connection: (re)subscribe every channel with a stream, hand
        messages to the streams, ping it, and replace it when it fails or falls silent."""
        delay = RECONNECT_BASE_S
        reconnecting = False
        while True:
            try:
                await self._connect()
                if reconnecting:
                    log.info("event subscriber reconnected", channels=len(self._subscriptions))
                # Streams that were open without this connection may have missed events
                # of other replicas: they re-read the history.
                self._resync_all()
                reconnecting = False
                delay = RECONNECT_BASE_S
                await self._read()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - any failure: reconnect with backoff
                if not reconnecting:
                    log.warning("event subscriber lost Redis", error=type(error).__name__)
                reconnecting = True
            self._first_attempt.set()
            await self._drop_connection()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_CAP_S)

    async def _connect(self) -> None:
        pubsub = self._redis.pubsub()
        self._pubsub = pubsub
        sent = {self._control, *(self._prefix + p for p in self._subscriptions)}
        await asyncio.wait_for(pubsub.subscribe(*sent), self._timeout_s)
        # Streams opened while that was on its way subscribe nothing themselves (not yet
        # connected): their channels are added here, before `connected` is set.
        while missing := {self._prefix + p for p in self._subscriptions} - sent:
            await asyncio.wait_for(pubsub.subscribe(*missing), self._timeout_s)
            sent |= missing
        self._connected.set()
        self._first_attempt.set()

    async def _read(self) -> None:
        pubsub = self._pubsub
        assert pubsub is not None
        last_heard = time.monotonic()
        last_ping = last_heard
        ping_every_s = self._dead_after_s / 3
        while True:
            message = await pubsub.get_message(timeout=ping_every_s / 2)
            now = time.monotonic()
            if message is not None:
                last_heard = now
                self._handle(message)
            elif now - last_heard > self._dead_after_s:
                raise TimeoutError("the subscriber connection fell silent")
            if now - last_ping >= ping_every_s:
                last_ping = now
                await asyncio.wait_for(pubsub.ping(), self._timeout_s)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        channel = message.get("channel")
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        if kind == "subscribe":
            self._confirmed.add(name)
            for waiter in self._waiting.pop(name, []):
                if not waiter.done():
                    waiter.set_result(None)
            return
        if kind != "message" or name == self._control:
            return
        try:
            body = orjson.loads(message["data"])
            if body["o"] == self._origin:
                return
            event = Event(kind=str(body["k"]), data=body["d"], id=body.get("i"))
            project_id = str(body["p"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("event message unreadable", channel=name)
            return
        self._deliver(project_id, event)
        for answer in self._answer_roll_call(project_id, event):
            # To the other replicas only: this one's streams know their own users.
            self._enqueue(project_id, answer)
