"""A Server-Sent Events reader for tests, and the app served by a real uvicorn in the test's
loop (the ASGI test transport buffers a whole response, so it cannot show a stream)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI

from snipix.cli.connections import GuardedHttpToolsProtocol
from tests.support import async_loopback_client, free_port, until

# Bound on waiting for one message: only a broken run waits this long.
MESSAGE_DEADLINE_S = 30.0


@dataclass
class Message:
    """One SSE message; `comment` for a heartbeat (`: heartbeat`)."""

    event: str | None = None
    id: int | None = None
    data: Any = None
    comment: str | None = None
    retry: int | None = None


@dataclass
class EventStream:
    """An open event stream: read messages one at a time, each with a deadline."""

    response: httpx.Response
    _lines: AsyncIterator[str] = field(init=False)

    def __post_init__(self) -> None:
        self._lines = self.response.aiter_lines()

    async def next(self, deadline_s: float = MESSAGE_DEADLINE_S) -> Message | None:
        """The next message, or None when the server ended the stream."""
        return await asyncio.wait_for(self._read(), deadline_s)

    async def _read(self) -> Message | None:
        message = Message()
        seen = False
        async for line in self._lines:
            if line == "":
                if seen:
                    return message
                continue
            seen = True
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                message.comment = value
            elif name == "event":
                message.event = value
            elif name == "id":
                message.id = int(value)
            elif name == "data":
                message.data = orjson.loads(value)
            elif name == "retry":
                message.retry = int(value)
        return message if seen else None

    async def next_event(self, *kinds: str, deadline_s: float = MESSAGE_DEADLINE_S) -> Message:
        """The next message of one of `kinds` (others, heartbeats included, skipped)."""
        loop = asyncio.get_running_loop()
        ends = loop.time() + deadline_s
        while True:
            message = await self.next(max(0.01, ends - loop.time()))
            if message is None:
                raise AssertionError(f"the stream ended before a {kinds} event")
            if message.event in kinds:
                return message

    async def ended(self, deadline_s: float = MESSAGE_DEADLINE_S) -> list[Message]:
        """Every message until the server ends the stream (fails if it does not)."""
        loop = asyncio.get_running_loop()
        ends = loop.time() + deadline_s
        seen: list[Message] = []
        while (message := await self.next(max(0.01, ends - loop.time()))) is not None:
            seen.append(message)
        return seen


@asynccontextmanager
async def open_stream(
    http: httpx.AsyncClient, url: str, headers: dict[str, str]
) -> AsyncIterator[EventStream]:
    async with http.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield EventStream(response)


@dataclass
class Served:
    base: str
    server: uvicorn.Server
    task: asyncio.Task[None]
    http: httpx.AsyncClient


@asynccontextmanager
async def served(app: FastAPI, *, grace_s: int = 10) -> AsyncIterator[Served]:
    """`app` under uvicorn with `snipix serve`'s connection protocol, on a free port."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            lifespan="on",
            log_config=None,
            http=GuardedHttpToolsProtocol,
            timeout_graceful_shutdown=grace_s,
        )
    )
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started or task.done(), what="uvicorn to start", deadline_s=60)
    assert not task.done(), "uvicorn exited during start-up"
    base = f"http://127.0.0.1:{port}"
    try:
        async with async_loopback_client(base_url=base, timeout=30) as http:
            yield Served(base=base, server=server, task=task, http=http)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=60)
