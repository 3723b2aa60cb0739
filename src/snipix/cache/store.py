"""Where cached bytes live: Redis (shared by every replica) or this process's memory.

Both stores offer the same few operations, each one round trip to Redis:

- entities (a project, a timeline): `get`, and `fill`, a fenced SET that refuses to replace
  a newer version (or a newer tombstone) with an older one;
- list pages (a user's project list): one Redis hash per user whose `gen` field is a random
  token. A page is written only while `gen` is the token its reader saw (`page_fill`), and a
  change replaces the whole hash with a new token (`page_reset`), so a page loaded before a
  change can never be stored after it. One key per user also keeps Redis Cluster happy.

Every key is under the configured prefix, so several deployments (or test runs) can share
one Redis, and `flush_prefix` can drop everything this service cached.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Protocol, cast

from redis.asyncio import Redis

from snipix.cache.entries import Entry

# KEYS[1] key; ARGV[1] value; ARGV[2] its version; ARGV[3] TTL in ms.
_FILL = """
local current = redis.call('GET', KEYS[1])
if current then
  local version = tonumber(string.match(current, '^%[(%-?%d+),'))
  if version and version > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""
# KEYS[1] hash; ARGV[1] generation seen ('' for none); ARGV[2] field; ARGV[3] value;
# ARGV[4] generation to create when there is none; ARGV[5] TTL in ms.
_PAGE_FILL = """
local gen = redis.call('HGET', KEYS[1], 'gen')
if (gen or '') ~= ARGV[1] then return 0 end
if not gen then redis.call('HSET', KEYS[1], 'gen', ARGV[4]) end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""
# KEYS[1] hash; ARGV[1] new generation; ARGV[2] TTL in ms.
_PAGE_RESET = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'gen', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


class CacheStore(Protocol):
    name: str

    async def get(self, key: str) -> bytes | None: ...

    async def fill(self, key: str, value: bytes, version: int, ttl_ms: int) -> bool: ...

    async def page_get(self, key: str, field: str) -> tuple[str | None, bytes | None]: ...

    async def page_fill(
        self, key: str, seen: str | None, field: str, value: bytes, new_gen: str, ttl_ms: int
    ) -> bool: ...

    async def page_reset(self, key: str, new_gen: str, ttl_ms: int) -> None: ...

    async def flush_prefix(self, prefix: str) -> int: ...

    async def ping(self) -> None: ...


class RedisStore:
    """The shared store: one Redis for every replica."""

    name = "redis"

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._fill = redis.register_script(_FILL)
        self._page_fill = redis.register_script(_PAGE_FILL)
        self._page_reset = redis.register_script(_PAGE_RESET)

    async def get(self, key: str) -> bytes | None:
        return cast(bytes | None, await self._redis.get(key))

    async def fill(self, key: str, value: bytes, version: int, ttl_ms: int) -> bool:
        return bool(await self._fill(keys=[key], args=[value, version, ttl_ms]))

    async def page_get(self, key: str, field: str) -> tuple[str | None, bytes | None]:
        gen, value = cast(list[bytes | None], await self._redis.hmget(key, ["gen", field]))
        return (gen.decode("ascii") if gen is not None else None), value

    async def page_fill(
        self, key: str, seen: str | None, field: str, value: bytes, new_gen: str, ttl_ms: int
    ) -> bool:
        args: list[Any] = [seen or "", field, value, new_gen, ttl_ms]
        return bool(await self._page_fill(keys=[key], args=args))

    async def page_reset(self, key: str, new_gen: str, ttl_ms: int) -> None:
        await self._page_reset(keys=[key], args=[new_gen, ttl_ms])

    async def flush_prefix(self, prefix: str) -> int:
        deleted = 0
        async for key in self._redis.scan_iter(match=f"{prefix}:*", count=500):
            deleted += int(await self._redis.delete(key))
        return deleted

    async def ping(self) -> None:
        await self._redis.ping()


# Bookkeeping per entry, so a store full of tiny entries is bounded too.
_ENTRY_OVERHEAD = 200


class MemoryStore:
    """A bounded in-process store for a single replica (no REDIS_URL).

    Least recently used entries are evicted once the bytes held pass `max_bytes`; expired
    ones are dropped when met. Values are bytes, never live objects, so a caller cannot
    change what another request will read.
    """

    name = "memory"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._values: OrderedDict[str, tuple[float, bytes | dict[str, bytes]]] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self.bytes_held = 0

    def _live(self, key: str) -> bytes | dict[str, bytes] | None:
        item = self._values.get(key)
        if item is None:
            return None
        expires_at, value = item
        if time.monotonic() >= expires_at:
            self._drop(key)
            return None
        self._values.move_to_end(key)
        return value

    def _drop(self, key: str) -> None:
        self._values.pop(key, None)
        self.bytes_held -= self._sizes.pop(key, 0)

    def _put(self, key: str, value: bytes | dict[str, bytes], ttl_ms: int) -> None:
        size = _ENTRY_OVERHEAD + len(key)
        size += len(value) if isinstance(value, bytes) else sum(map(len, value.values()))
        self._drop(key)
        if size > self.max_bytes:
            return
        self._values[key] = (time.monotonic() + ttl_ms / 1000, value)
        self._sizes[key] = size
        self.bytes_held += size
        while self.bytes_held > self.max_bytes:
            oldest = next(iter(self._values))
            self._drop(oldest)

    async def get(self, key: str) -> bytes | None:
        value = self._live(key)
        return value if isinstance(value, bytes) else None

    def peek(self, key: str) -> bytes | None:
        """`get` without the await, for the hot-read lane (it is all in memory)."""
        value = self._live(key)
        return value if isinstance(value, bytes) else None

    async def fill(self, key: str, value: bytes, version: int, ttl_ms: int) -> bool:
        current = self._live(key)
        if isinstance(current, bytes):
            entry = Entry.decode(current)
            if entry is not None and entry.version > version:
                return False
        self._put(key, value, ttl_ms)
        return True

    async def page_get(self, key: str, field: str) -> tuple[str | None, bytes | None]:
        pages = self._live(key)
        if not isinstance(pages, dict):
            return None, None
        gen = pages.get("gen")
        return (gen.decode("ascii") if gen is not None else None), pages.get(field)

    async def page_fill(
        self, key: str, seen: str | None, field: str, value: bytes, new_gen: str, ttl_ms: int
    ) -> bool:
        current = self._live(key)
        pages = dict(current) if isinstance(current, dict) else {}
        gen = pages.get("gen")
        if (gen.decode("ascii") if gen is not None else None) != seen:
            return False
        if gen is None:
            pages["gen"] = new_gen.encode("ascii")
        pages[field] = value
        self._put(key, pages, ttl_ms)
        return True

    async def page_reset(self, key: str, new_gen: str, ttl_ms: int) -> None:
        self._put(key, {"gen": new_gen.encode("ascii")}, ttl_ms)

    async def flush_prefix(self, prefix: str) -> int:
        keys = [key for key in self._values if key.startswith(prefix + ":")]
        for key in keys:
            self._drop(key)
        return len(keys)

    async def ping(self) -> None:
        return None
