"""One project's event stream as Server-Sent Events, and the bounds on how many are open.

The order that makes a reconnect lose nothing and repeat nothing: subscribe first (from
then on every new revision arrives on the subscription), then read the revisions after the
client's Last-Event-ID from the history, then go live, dropping any revision whose version
was already sent. A revision that arrives ahead of the next expected version (another
replica's event overtook it, or Redis lost one) has the versions in between read from the
history first; a RESYNC marker (the bus knows the stream missed something) re-reads it.
So the revisions a stream sends are exactly the versions after the one it started from,
in order, each once.

A stream re-checks its user's access at each heartbeat and whenever a `membership` event
for the project arrives, and ends when it is gone (the client's reconnect then gets 404).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson
import structlog

from snipix.errors import RateLimited, SnipixError
from snipix.events.bus import CLOSED, RESYNC, Event, EventMetrics, Subscription

log = structlog.get_logger(__name__)

# A revision's patch larger than this is not sent in the event (`patch: null`,
# `patchOmitted: true`): the client reads the timeline instead. A full-state save of a
# large timeline would otherwise push megabytes to every open tab.
PATCH_MAX_BYTES: Final = 256 * 1024
# How long an EventSource waits before reconnecting (the SSE `retry:` field), ms.
RECONNECT_MS: Final = 2_000
# Seconds a client refused for a bound is told to wait.
BUSY_RETRY_AFTER_S: Final = 5


class StreamsBusy(SnipixError):
    """This replica already holds its bound of streams (SNIPIX_EVENTS_MAX_STREAMS)."""

    code = "streams_busy"
    status_code = 503


def revision_event(
    version: int,
    *,
    actor: str,
    kind: str,
    label: str | None,
    patch: list[Any],
    at: datetime | None,
) -> Event:
    """A timeline revision as an event: its id is the version."""
    data: dict[str, Any] = {
        "version": version,
        "actor": actor,
        "kind": kind,
        "label": label,
        "at": at.isoformat() if at is not None else None,
        "patch": patch,
    }
    if len(orjson.dumps(patch)) > PATCH_MAX_BYTES:
        data["patch"] = None
        data["patchOmitted"] = True
    return Event("revision", data, id=version)


# The revision events after a version, up to the current head: (head version, events).
# Empty events when more than `limit` were missed (the stream tells the client to reload).
History = Callable[[int, int], Awaitable[tuple[int, list[Event]]]]
# Whether the stream's user may still read the project.
StillAllowed = Callable[[], Awaitable[bool]]


def encode(event: Event) -> bytes:
    """One SSE message: `id:` only for revisions, so Last-Event-ID is always a version."""
    head = f"id: {event.id}\n" if event.id is not None else ""
    return f"{head}event: {event.kind}\ndata: ".encode() + orjson.dumps(event.data) + b"\n\n"


@dataclass
class StreamBounds:
    """Streams open on this replica, in all and per user; past a bound a new one is
    refused (429 for the user's, 503 for the replica's, both with Retry-After)."""

    max_per_user: int
    max_streams: int
    metrics: EventMetrics

    def __post_init__(self) -> None:
        self._per_user: dict[str, int] = {}
        self._total = 0

    @contextlib.contextmanager
    def admit(self, user_id: str) -> Iterator[None]:
        retry = {"Retry-After": str(BUSY_RETRY_AFTER_S)}
        if self._per_user.get(user_id, 0) >= self.max_per_user:
            raise RateLimited(
                f"You have {self.max_per_user} event streams open already "
                "(SNIPIX_EVENTS_MAX_PER_USER); close one (a tab) first.",
                headers=retry,
            )
        if self._total >= self.max_streams:
            raise StreamsBusy(
                "This server has as many event streams open as it allows; retry in a moment.",
                headers=retry,
            )
        self._per_user[user_id] = self._per_user.get(user_id, 0) + 1
        self._total += 1
        self.metrics.streams.inc()
        try:
            yield
        finally:
            self._total -= 1
            self.metrics.streams.dec()
            left = self._per_user[user_id] - 1
            if left:
                self._per_user[user_id] = left
            else:
                del self._per_user[user_id]


@dataclass(frozen=True, slots=True)
class Start:
    """Where a stream starts: the revisions to send first, and the version after which
    live revisions follow (None: tell the client to reload, then go on from `head`)."""

    head: int
    replay: list[Event]
    reload: bool


async def start_from(history: History, last_id: int | None, *, replay_max: int) -> Start:
    """Read the revisions the client missed (after Last-Event-ID), before going live."""
    if last_id is None:
        head, _ = await history(2**62, replay_max)
        return Start(head=head, replay=[], reload=False)
    head, missed = await history(last_id, replay_max)
    # An id ahead of the head (another database, a forged header) or too far behind:
    # the client reloads the state; nothing it holds can be patched forward.
    if last_id > head or (head > last_id and not missed):
        return Start(head=head, replay=[], reload=True)
    return Start(head=head, replay=missed, reload=False)


async def sse(
    subscription: Subscription,
    start: Start,
    *,
    history: History,
    still_allowed: StillAllowed,
    heartbeat_s: float,
    replay_max: int,
    on_end: Callable[[], Awaitable[None]],
) -> AsyncIterator[bytes]:
    """The stream's bytes: the replay, then live events and heartbeats, until the client
    goes, the server stops (CLOSED), the user's access ends or the history cannot be read
    (the client reconnects with its Last-Event-ID and resumes)."""
    loop = asyncio.get_running_loop()
    last = start.head
    if start.replay and start.replay[-1].id is not None:
        last = start.replay[-1].id
    try:
        yield f"retry: {RECONNECT_MS}\n\n".encode()
        if start.reload:
            yield encode(Event("reload", {"version": start.head}))
        for missed in start.replay:
            yield encode(missed)
        next_beat = loop.time() + heartbeat_s
        while True:
            event = await subscription.next(max(0.0, next_beat - loop.time()))
            if event is None or loop.time() >= next_beat:
                next_beat = loop.time() + heartbeat_s
                if not await _allowed(still_allowed):
                    return
                yield b": heartbeat\n\n"
                if event is None:
                    continue
            if event.kind == CLOSED:
                return
            behind = event.kind == "revision" and event.id is not None and event.id > last + 1
            if event.kind == RESYNC or behind:
                # Missed versions first (a gap, or the bus lost events): from the history.
                try:
                    caught = await _catch_up(history, last, replay_max)
                except Exception as error:  # noqa: BLE001 - end; the client resumes later
                    log.info("event stream ended: history unreadable", error=type(error).__name__)
                    return
                for chunk, version in caught:
                    last = version
                    yield chunk
                if event.kind == RESYNC:
                    continue
            if event.kind == "revision":
                if event.id is None or event.id <= last:
                    continue  # sent already (replayed, or read while catching up)
                last = event.id
            yield encode(event)
            if event.kind in ("membership", "project") and not await _allowed(still_allowed):
                return
    finally:
        await on_end()


async def _catch_up(history: History, last: int, replay_max: int) -> list[tuple[bytes, int]]:
    """The SSE messages of the revisions after `last` (or a reload past `replay_max`),
    each with the version the stream is at once it is sent."""
    head, missed = await history(last, replay_max)
    if head > last and not missed:
        return [(encode(Event("reload", {"version": head})), head)]
    return [(encode(event), event.id) for event in missed if event.id is not None]


async def _allowed(still_allowed: StillAllowed) -> bool:
    try:
        return await still_allowed()
    except Exception as error:  # noqa: BLE001 - any failure ends the stream; the client reconnects
        log.info("event stream ended: access check failed", error=type(error).__name__)
        return False
