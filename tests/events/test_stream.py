"""The stream's order at the seam between history and live events, without HTTP: the
revisions it sends are exactly the versions after where it started, each once, in order."""

from __future__ import annotations

import asyncio

from snipix.events.bus import RESYNC, Event, Subscription
from snipix.events.stream import Start, encode, revision_event, sse, start_from


def revision(version: int) -> Event:
    return revision_event(
        version, actor="u", kind="patch", label=None, patch=[{"op": "test"}], at=None
    )


class History:
    """The committed revisions (the timeline's history as the service reads it)."""

    def __init__(self, head: int) -> None:
        self.head = head
        self.reads: list[int] = []

    async def __call__(self, after: int, limit: int) -> tuple[int, list[Event]]:
        self.reads.append(after)
        if self.head <= after or self.head - after > limit:
            return self.head, []
        return self.head, [revision(v) for v in range(after + 1, self.head + 1)]


async def allowed() -> bool:
    return True


async def nothing() -> None:
    return None


async def sent_ids(subscription: Subscription, start: Start, history: History) -> list[int]:
    chunks = sse(
        subscription,
        start,
        history=history,
        still_allowed=allowed,
        heartbeat_s=60,
        replay_max=100,
        on_end=nothing,
    )
    ids: list[int] = []
    async for chunk in chunks:
        if chunk.startswith(b"id: "):
            ids.append(int(chunk.split(b"\n", 1)[0][4:]))
    return ids


async def test_live_events_already_replayed_are_dropped_and_gaps_are_read_from_history() -> None:
    history = History(head=3)
    subscription = Subscription("p")
    # Subscribed before the history read: v3 was committed in between, so it arrives live
    # too; v4 was lost (or overtaken); v5 arrives.
    for event in (revision(3), revision(5)):
        subscription.offer(event)
    start = await start_from(history, 1, replay_max=100)
    assert [e.id for e in start.replay] == [2, 3]
    history.head = 5
    subscription.end()
    assert await sent_ids(subscription, start, history) == [2, 3, 4, 5]


async def test_a_resync_sends_what_the_stream_missed_once() -> None:
    history = History(head=2)
    subscription = Subscription("p")
    start = await start_from(history, None, replay_max=100)
    assert start.head == 2
    assert start.replay == []
    history.head = 4  # two revisions whose events never came (Redis was away)
    for event in (Event(RESYNC, {}), revision(4), revision(5)):
        subscription.offer(event)
    history.head = 5
    subscription.end()
    assert await sent_ids(subscription, start, history) == [3, 4, 5]


async def test_a_stream_that_reads_too_slowly_is_resynced_not_grown() -> None:
    subscription = Subscription("p")
    for version in range(1, 1_000):
        subscription.offer(revision(version))
    assert subscription.queue.qsize() <= subscription.queue.maxsize
    assert (await subscription.next(1) or revision(0)).kind == RESYNC


def test_an_oversized_patch_is_left_out_of_the_event() -> None:
    big = revision_event(
        1, actor="u", kind="save", label=None, patch=[{"v": "x" * 300_000}], at=None
    )
    assert big.data["patch"] is None
    assert big.data["patchOmitted"] is True
    assert encode(big).startswith(b"id: 1\nevent: revision\ndata: ")


async def test_the_stream_ends_on_close() -> None:
    subscription = Subscription("p")
    subscription.end()
    start = Start(head=0, replay=[], reload=False)
    assert await asyncio.wait_for(sent_ids(subscription, start, History(0)), 30) == []
