"""A bounded in-process layer in front of Redis, kept exact by Redis itself.

Every replica keeps its hottest entries in memory and opens one extra connection to Redis
in RESP3 with `CLIENT TRACKING ON BCAST PREFIX <prefix>:`: whenever any client changes a
key under the prefix (a write's tombstone, a fill), Redis pushes `invalidate <key>` to every
replica. Redis queues that push while it executes the change, before it answers the client
that made it; so by the time a writer's HTTP answer reaches the user and the user's next
read reaches another replica, the push is already in that replica's socket. Each lookup
first drains the socket without blocking (one `recv`, usually EAGAIN) and evicts what it
names — a write is never followed by a stale read, on this replica or another.

What could break that, and what is done:
- A read from Redis racing a change: the entry is kept only if no invalidation arrived
  between the GET being sent and its answer (a sequence number), else it is not kept.
- The tracking connection fails or Redis restarts: the layer empties itself and turns off
  (every lookup goes to Redis) until a new connection is tracking again — invalidations
  missed meanwhile can never be served.
- Redis says its tracking table overflowed or was flushed (a null invalidation): empty.
- Redis hangs (stopped, overloaded, or cut off from us) and the socket falls silent: a
  silent socket looks exactly like "nothing changed". So the Cache sends a `PING` on the
  connection every quarter of SNIPIX_CACHE_LOCAL_MAX_LAG_MS; Redis answers one connection in
  order and queues the pushes of every change it executed before the PING ahead of its
  `PONG`, so reading that `PONG` proves every invalidation up to the PING's sending has been
  applied. A lookup is answered only while the newest answered PING was sent less than the
  bound ago; past it the lookup goes to Redis (which times out while it hangs, switching the
  Cache to the database), so no replica answers from memory for longer than the bound after
  a write it cannot see.
- More invalidations wait than the socket holds (a replica that looked nothing up during a
  burst of writes): Redis keeps the rest, the write's among them, until we read, so a
  drain cannot see it. A drain that finds that much waiting empties the layer; and the
  socket is read until it would block, not until a short read (a TLS read returns one
  record at a time).

The connection is a plain socket rather than redis-py's: docs/decisions.md says why.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Final
from urllib.parse import unquote, urlparse

import structlog

from snipix.cache.entries import Entry

log = structlog.get_logger(__name__)

DEFAULT_MAX_ENTRIES: Final = 10_000
DEFAULT_MAX_BYTES: Final = 32 * 1024 * 1024
# Per-entry bookkeeping counted against the byte bound.
_OVERHEAD: Final = 200
# A drain that reads this much may have left invalidations on Redis' side, so the layer
# empties itself: well below what a full socket holds (Redis holds pushes back only once it
# is full), while a replica in use reads only what changed since its last lookup.
_BACKLOG_BYTES: Final = 16 * 1024
# How long after the last confirmed heartbeat the layer may still answer (the setting's
# default): the longest a replica can answer from memory without knowing Redis is alive.
DEFAULT_MAX_LAG_S: Final = 1.0
# Heartbeats sent and not answered before the connection is given up (and reopened by the
# Cache when Redis answers again): a hung Redis is not left to queue them for hours.
_MAX_UNANSWERED: Final = 64
_PING: Final = b"*1\r\n$4\r\nPING\r\n"


class _Incomplete(Exception):
    """The buffer ends in the middle of a RESP3 frame."""


def _parse(buffer: bytes, at: int) -> tuple[object, int]:
    """One RESP3 value from `buffer[at:]`: (value, next offset). Enough for pushes/replies."""
    end = buffer.find(b"\r\n", at)
    if end < 0:
        raise _Incomplete
    kind, line = buffer[at : at + 1], buffer[at + 1 : end]
    after = end + 2
    if kind in (b"+", b"-", b":", b",", b"#", b"("):
        return line, after
    if kind == b"_":
        return None, after
    if kind in (b"$", b"=", b"!"):
        size = int(line)
        if size < 0:
            return None, after
        if len(buffer) < after + size + 2:
            raise _Incomplete
        return buffer[after : after + size], after + size + 2
    if kind in (b"*", b">", b"~"):
        items: list[object] = []
        for _ in range(int(line)):
            item, after = _parse(buffer, after)
            items.append(item)
        return (b">" if kind == b">" else b"*", items), after
    if kind == b"%" or kind == b"|":
        pairs: list[object] = []
        for _ in range(int(line) * 2):
            item, after = _parse(buffer, after)
            pairs.append(item)
        if kind == b"|":  # an attribute precedes the real value
            return _parse(buffer, after)
        return (b"%", pairs), after
    raise ValueError(f"unexpected RESP3 type {kind!r}")


def _command(*parts: str) -> bytes:
    encoded = [part.encode() for part in parts]
    out = [b"*%d\r\n" % len(encoded)]
    for part in encoded:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class LocalLayer:
    """The in-process entries and the tracking connection that keeps them exact."""

    def __init__(
        self,
        redis_url: str,
        prefix: str,
        *,
        timeout_s: float,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_lag_s: float = DEFAULT_MAX_LAG_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = redis_url
        self._prefix = prefix + ":"
        self._timeout_s = timeout_s
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self.bytes_held = 0
        self._sock: socket.socket | ssl.SSLSocket | None = None
        self._buffer = b""
        # Invalidations seen so far: a GET's answer is kept only if this did not move.
        self.sequence = 0
        # The heartbeat: when each unanswered PING was sent, and when the newest answered
        # one was (every invalidation Redis queued before that moment has been applied).
        self.max_lag_s = max_lag_s
        self._monotonic = monotonic
        self._pings: deque[float] = deque()
        self._confirmed = float("-inf")
        # Redis fell silent past the bound (seen by `heartbeat`, which reads every tick), and
        # until when, after it answers again, nothing it holds is trusted (see `distrust_until`).
        self._silent = False
        self._interrupted = False
        self.distrust_until = float("-inf")

    # --- the tracking connection --------------------------------------------------------

    @property
    def active(self) -> bool:
        return self._sock is not None

    @property
    def heartbeat_interval_s(self) -> float:
        """How often the Cache sends a heartbeat: four chances to confirm within the bound."""
        return self.max_lag_s / 4

    @property
    def unanswered(self) -> int:
        """Heartbeats sent and not answered yet."""
        return len(self._pings)

    def heartbeat(self) -> None:
        """Read what arrived, then send a PING on the tracking connection (never blocks).

        Reading here too, every tick, means a PONG is read within a tick of its arrival even
        with no lookups, so a heartbeat still unanswered after the bound is a silent Redis.
        A send that cannot complete at once means Redis has stopped reading for long enough
        to fill the socket: the connection is given up, as it is after too many unanswered.
        """
        self.drain()
        sock = self._sock
        if sock is None:
            return
        # Silence is a PING Redis has left unanswered for the bound, not merely an old
        # confirmation: after our own event loop stalled, the PONG is waiting in the socket.
        pings = self._pings
        if not self._silent and pings and self._monotonic() - pings[0] >= self.max_lag_s:
            self._silent = True
            log.warning(
                "cache tracking silent; local layer not answering", unanswered=len(self._pings)
            )
        if len(self._pings) >= _MAX_UNANSWERED:
            self._lost("heartbeat unanswered")
            return
        sent_at = self._monotonic()
        try:
            sent = sock.send(_PING)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            sent = 0
        except OSError as error:
            self._lost(type(error).__name__)
            return
        if sent != len(_PING):
            self._lost("heartbeat not sent")
            return
        self._pings.append(sent_at)

    def connect(self) -> bool:
        """Open the tracking connection (blocking, bounded by the Redis timeout)."""
        self.close()
        url = urlparse(self._url)
        sock: socket.socket | ssl.SSLSocket | None = None
        started = self._monotonic()
        try:
            sock = self._open()
            db = (url.path or "/0").lstrip("/") or "0"
            hello = ["HELLO", "3"]
            if url.password is not None:
                hello += ["AUTH", unquote(url.username or "default"), unquote(url.password)]
            commands = [
                hello,
                ["SELECT", db],
                ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", self._prefix],
            ]
            for command in commands:
                sock.sendall(_command(*command))
                reply = self._read_reply(sock)
                if isinstance(reply, bytes) and command[0] != "HELLO" and reply != b"OK":
                    raise ConnectionError(f"{command[0]} refused")
            sock.setblocking(False)
        except (OSError, ValueError, ConnectionError) as error:
            if sock is not None:
                sock.close()
            log.warning("cache tracking unavailable", error_class=type(error).__name__)
            return False
        self._sock = sock
        self._buffer = b""
        self._pings.clear()
        # Every change from the handshake on is pushed to us: as good as an answered PING.
        self._confirmed = started
        if self._silent or self._interrupted:
            # The last connection was lost (or fell silent): Redis may hold entries a
            # replica that wrote meanwhile has not invalidated yet.
            self._interrupted = False
            self._returned()
        # Anything cached before this connection may have missed an invalidation.
        self.clear()
        return True

    def _open(self) -> socket.socket | ssl.SSLSocket:
        parsed = urlparse(self._url)
        if parsed.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self._timeout_s)
            sock.connect(parsed.path)
            return sock
        plain = socket.create_connection(
            (parsed.hostname or "localhost", parsed.port or 6379), timeout=self._timeout_s
        )
        if parsed.scheme == "rediss":
            context = ssl.create_default_context()
            return context.wrap_socket(plain, server_hostname=parsed.hostname)
        return plain

    def _read_reply(self, sock: socket.socket | ssl.SSLSocket) -> object:
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed during handshake")
            data += chunk
            try:
                value, _end = _parse(data, 0)
            except _Incomplete:
                continue
            if isinstance(value, bytes) and data[:1] == b"-":
                raise ConnectionError("Redis refused the tracking handshake")
            return value

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None
        self._pings.clear()
        self.clear()

    def drain(self) -> None:
        """Apply every invalidation already received; never blocks."""
        sock = self._sock
        if sock is None:
            return
        read = 0
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    self._lost("closed")
                    return
                self._buffer += chunk
                read += len(chunk)
        except (BlockingIOError, ssl.SSLWantReadError):
            pass
        except OSError as error:
            self._lost(type(error).__name__)
            return
        self._apply()
        if read >= _BACKLOG_BYTES and self._sock is not None:
            log.info("cache tracking backlog; local layer emptied", bytes_read=read)
            self.clear()

    def _apply(self) -> None:
        at = 0
        buffer = self._buffer
        while at < len(buffer):
            try:
                value, at_next = _parse(buffer, at)
            except _Incomplete:
                break
            except ValueError:
                self._lost("protocol")
                return
            kind = buffer[at : at + 1]
            at = at_next
            if not (isinstance(value, tuple) and value[0] == b">"):
                # Not a push: the answer to our oldest PING (nothing else is sent).
                if kind != b"+" or value != b"PONG" or not self._pings:
                    self._lost("unexpected reply")
                    return
                self._confirmed = self._pings.popleft()
                if self._silent:
                    self._returned()
                continue
            items = value[1]
            if not items or items[0] != b"invalidate":
                continue
            self.sequence += 1
            keys = items[1] if len(items) > 1 else None
            if keys is None:
                self.clear()  # flushed, or Redis dropped its tracking table
                continue
            assert isinstance(keys, tuple)
            for key in keys[1]:
                if isinstance(key, bytes):
                    self._drop(key.decode())
        self._buffer = buffer[at:]

    def _returned(self) -> None:
        """Redis answers again after a silence: hold off for one more bound.

        A replica that wrote while Redis hung holds the invalidation and delivers it on its
        next probe (every tick while it holds one), after Redis returns; until then what we
        hold, and what Redis holds, may predate a write already acknowledged.
        """
        self._silent = False
        self.distrust_until = self._monotonic() + self.max_lag_s
        log.info("cache tracking answers again; local layer answering after the bound")

    def _lost(self, why: str) -> None:
        log.warning("cache tracking lost; local layer off until it returns", reason=why)
        self._interrupted = True
        self.close()

    # --- entries ------------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        """The entry held for `key`, if any and only while the heartbeat is within the bound.

        Past the bound the answer is None (ask Redis) even for a held entry: Redis may have
        executed writes whose invalidations we have not read. The entries are kept: once a
        later heartbeat is answered (and `distrust_until` has passed, when Redis was silent),
        every invalidation before it has been applied.
        """
        if self._sock is None:
            return None
        self.drain()
        now = self._monotonic()
        if now - self._confirmed >= self.max_lag_s or now < self.distrust_until:
            return None
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: Entry, sequence: int) -> None:
        """Keep `entry`, read while `sequence` was current, unless it changed since."""
        if self._sock is None:
            return
        self.drain()
        if self.sequence != sequence:
            return
        size = _OVERHEAD + len(key) + len(entry.payload)
        if size > self._max_bytes:
            return
        self._drop(key)
        self._entries[key] = entry
        self._sizes[key] = size
        self.bytes_held += size
        while len(self._entries) > self._max_entries or self.bytes_held > self._max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)

    def evict(self, key: str) -> None:
        self.sequence += 1
        self._drop(key)

    def _drop(self, key: str) -> None:
        if self._entries.pop(key, None) is not None:
            self.bytes_held -= self._sizes.pop(key, 0)

    def clear(self) -> None:
        self.sequence += 1
        self._entries.clear()
        self._sizes.clear()
        self.bytes_held = 0

    def __len__(self) -> int:
        return len(self._entries)
