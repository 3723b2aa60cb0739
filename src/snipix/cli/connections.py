"""The HTTP connection limits of `snipix serve`: uvicorn's httptools protocol, guarded.

uvicorn closes an idle keep-alive connection, but nothing else: a connection that never
sends a request, one that sends its head a byte at a time, one whose head never ends (the
parser buffers it all) and a body that trickles in stay open for as long as the client
likes, each holding a file descriptor and memory without authentication. This protocol
adds what a server facing the internet needs, per connection:

- **header timeout**: the request head (line and headers) must arrive within
  `SNIPIX_HTTP_HEADER_TIMEOUT_S` of the connection opening, or of the first byte of a
  later request on a kept-alive connection; otherwise the connection is closed.
- **head size**: more than `SNIPIX_HTTP_MAX_HEADER_BYTES` before the head ends is a 431,
  and the connection closes. Counted on the bytes received, before the parser buffers
  them, so an unterminated head costs at most the limit and one read.
- **body rate**: while a body is being received, every `SNIPIX_HTTP_BODY_WINDOW_S` the
  client must have sent at least `SNIPIX_HTTP_MIN_BODY_RATE` bytes a second over that
  window, or the connection closes (the app sees a disconnect). A window in which the
  server itself stopped reading (the app is slower than the upload) is not judged.
- **connection bound**: past `SNIPIX_HTTP_MAX_CONNECTIONS` open connections (per worker,
  and never above what the process's file-descriptor limit leaves), a new connection
  closes the oldest one still waiting for its request head, so a flood of idle sockets
  cannot lock out a health check or a real client; when none is waiting, the new one
  is closed.

Idle keep-alive connections close after `SNIPIX_HTTP_KEEPALIVE_S` (uvicorn's own timer).

On shutdown uvicorn asks each connection to finish its response and then waits for them
(`SNIPIX_SHUTDOWN_GRACE_S`); a live event stream never finishes by itself. So the first
connection told to shut down also ends every event stream of its worker (the bus's
`stop_streams`, found in the lifespan state): each finishes its response cleanly, the
client reconnects to another replica, and the worker exits without waiting out the grace.

This module relies on uvicorn's `HttpToolsProtocol` internals (its parser callbacks,
`transport`, `flow`, `connections`, `cycle`); uvicorn is pinned to the tested minor and
`tests/cli/test_connections_contract.py` fails when those change.
"""

from __future__ import annotations

import asyncio
import resource
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Self

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from snipix.events.bus import STOP_STREAMS
from snipix.settings import Settings

# File descriptors kept free of connections: the engine's and Redis' clients, log files,
# media files being served or written.
_RESERVED_FDS: Final = 100
_HEAD_TOO_LARGE: Final = b"Request header fields too large."


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout_s: float
    keepalive_s: int
    body_window_s: float
    min_body_rate: int
    max_header_bytes: int
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        bound = settings.http_max_connections
        if soft != resource.RLIM_INFINITY:
            bound = max(1, min(bound, soft - _RESERVED_FDS))
        return cls(
            header_timeout_s=settings.http_header_timeout_s,
            keepalive_s=settings.http_keepalive_s,
            body_window_s=settings.http_body_window_s,
            min_body_rate=settings.http_min_body_rate,
            max_header_bytes=settings.http_max_header_bytes,
            max_connections=bound,
        )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits in the module docstring."""

    # Read once per worker process from its environment (the serve command's settings):
    # uvicorn builds protocols itself, and a worker process gets only importable names.
    _limits: ClassVar[ConnectionLimits | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = type(self)._limits
        if limits is None:
            limits = type(self)._limits = ConnectionLimits.from_settings(Settings())
        self.limits = limits
        self._awaiting_head = True
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._waiting_since = 0.0
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_bytes = 0

    # --- connections ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections and not self._evict_one():
            transport.close()
            return
        super().connection_made(transport)
        self._start_head_timer()

    def _evict_one(self) -> bool:
        """Close the connection that has waited longest for its request head."""
        waiting = [
            c
            for c in self.connections
            if isinstance(c, GuardedHttpToolsProtocol) and c._awaiting_head and c._head_timer
        ]
        if not waiting:
            return False
        oldest = min(waiting, key=lambda c: c._waiting_since)
        oldest._close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        self._stop_body_timer()
        if self.transport is None:  # refused in connection_made: never served
            return
        super().connection_lost(exc)

    def _close(self) -> None:
        self._stop_head_timer()
        self._stop_body_timer()
        self.connections.discard(self)
        if self.transport is not None:
            self.transport.close()

    # --- the request head -----------------------------------------------------------------

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._waiting_since = time.monotonic()
            self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._close)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def data_received(self, data: bytes) -> None:
        if self._awaiting_head:
            self._start_head_timer()  # a later request on a kept-alive connection
            self._head_bytes += len(data)
        elif self._body_timer is not None:
            self._body_bytes += len(data)
        super().data_received(data)
        if self._awaiting_head and self._head_bytes > self.limits.max_header_bytes:
            self._refuse_head()

    def _refuse_head(self) -> None:
        content = [
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: " + str(len(_HEAD_TOO_LARGE)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            _HEAD_TOO_LARGE,
        ]
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(content))
        self._close()

    def on_message_begin(self) -> None:
        self._awaiting_head = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._head_bytes = 0
        self._stop_head_timer()
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.more_body and self.limits.min_body_rate:
            self._body_bytes = 0
            self._body_timer = self.loop.call_later(self.limits.body_window_s, self._judge_body)

    # --- the body -------------------------------------------------------------------------

    def _judge_body(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if cycle is None or not cycle.more_body or self.transport.is_closing():
            return
        needed = self.limits.min_body_rate * self.limits.body_window_s
        if self._body_bytes < needed and not self.flow.read_paused:
            self._close()
            return
        self._body_bytes = 0
        self._body_timer = self.loop.call_later(self.limits.body_window_s, self._judge_body)

    def _stop_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def shutdown(self) -> None:
        stop_streams = self.app_state.get(STOP_STREAMS)
        if callable(stop_streams):
            stop_streams()
        super().shutdown()

    def on_message_complete(self) -> None:
        self._stop_body_timer()
        # The parser waits for the next request's head from here on: its bytes count
        # against the size limit, and its first byte starts the header timeout.
        self._awaiting_head = True
        super().on_message_complete()
