"""Moving-window counters for rate limits: in Redis when it is configured, in process otherwise.

`limits` counts (its moving window: at most N events in any W seconds, exactly, so a burst
of N + M requests lets N through however it is timed). With REDIS_URL the counters live in
Redis, shared by every replica, through `limits`' redis-py implementation over the app's own
connection pool (so REDIS_TIMEOUT_MS and the no-retry policy of `app._redis_client` apply;
no second Redis client library). Without Redis they live in this process.

Redis failing (down, slower than REDIS_TIMEOUT_MS) never fails a request and never lets
everything through: the call is counted in process instead. A slow call is not an outage:
a call that times out is counted in process alone, and the limiter switches only when no
call has succeeded for `SLOW_IS_DOWN_AFTER_S` of timeouts (a refused connection switches
at once). So a burst that makes one call miss its timeout does not trade the shared counts
for empty local ones while Redis is healthy. Sign-in lockouts never depend on it: they
are kept in the database (`accounts.throttle`). One WARNING per outage, every
failed call counted (`snipix_rate_limit_storage_errors_total`), `snipix_rate_limit_fallback`
1 for the outage's duration. While Redis is down requests do not touch it: a background
probe (0.5 s doubling to 2 s, `run_recovery`) finds it again. The in-process counts start
empty, so across a switch a client can get up to one more window's worth.

Beside `limits`' windows, reservable windows (`reserve`, `release`, `clear_window`): a slot
is taken atomically before the work it limits and can be given back one by one afterwards
(a sign-in takes a slot before checking the password and returns it when the password
was right). `limits` can only clear a whole window, so these are a sorted set per key in
Redis (member = slot, score = time), changed by one Lua script, or a dict in process.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

import structlog
from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeout

from snipix.observability.metrics import Metrics
from snipix.security.metrics import RateLimitMetrics

log = structlog.get_logger(__name__)

# The same back-off as the cache's probe (cache/service.py): a refused connection costs
# nothing, a hung Redis one timeout per probe, never one per request.
PROBE_MIN_S: Final = 0.5
PROBE_MAX_S: Final = 2.0
# Timeouts without a success in between for this long make an outage: a hung Redis is
# found within about a second, a momentarily slow one is not mistaken for it.
SLOW_IS_DOWN_AFTER_S: Final = 1.0


# Take a slot in the window KEYS[1] (ARGV: now, window seconds, limit, slot id) after
# dropping the slots older than the window: {1, s} when taken ({0, s} when full), s the
# seconds until the oldest slot leaves if the window is now full, else 0. One script, so
# no two callers can both see the last free slot.
_RESERVE_LUA: Final = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local taken = 0
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('PEXPIRE', key, math.ceil(window * 1000))
  taken = 1
end
if redis.call('ZCARD', key) < limit then
  return {taken, '0'}
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return {taken, tostring(tonumber(oldest[2]) + window - now)}
"""


class _Windows(Protocol):
    async def reserve(
        self, key: str, slot: str, *, now: float, window_s: float, limit: int
    ) -> tuple[bool, float]: ...

    async def release(self, key: str, slot: str) -> None: ...

    async def clear(self, key: str) -> None: ...


class _RedisWindows:
    """Reservable windows in Redis: shared by every replica."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._reserve = redis.register_script(_RESERVE_LUA)

    async def reserve(
        self, key: str, slot: str, *, now: float, window_s: float, limit: int
    ) -> tuple[bool, float]:
        taken, wait = await self._reserve(keys=[key], args=[now, window_s, limit, slot])
        return int(taken) == 1, float(wait)

    async def release(self, key: str, slot: str) -> None:
        await self._redis.zrem(key, slot)

    async def clear(self, key: str) -> None:
        await self._redis.delete(key)


class _LocalWindows:
    """The same windows in this process (one event loop: each call is atomic)."""

    def __init__(self) -> None:
        self._slots: dict[str, dict[str, float]] = {}

    async def reserve(
        self, key: str, slot: str, *, now: float, window_s: float, limit: int
    ) -> tuple[bool, float]:
        slots = {taken: at for taken, at in self._slots.get(key, {}).items() if at > now - window_s}
        self._slots[key] = slots
        taken = len(slots) < limit
        if taken:
            slots[slot] = now
        if len(slots) < limit:
            return taken, 0.0
        return taken, min(slots.values()) + window_s - now

    async def release(self, key: str, slot: str) -> None:
        self._slots.get(key, {}).pop(slot, None)

    async def clear(self, key: str) -> None:
        self._slots.pop(key, None)


class Limiter:
    """Counts events per key in a moving window; Redis-backed with an in-process fallback."""

    def __init__(
        self,
        redis: Redis | None,
        *,
        prefix: str,
        metrics: RateLimitMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Public: the callers that refuse a request count the refusal here, by scope.
        self.metrics = metrics
        self._redis = redis
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared: MovingWindowRateLimiter | None = None
        self._key_prefix = f"{prefix}-limits"
        self._local_windows: _Windows = _LocalWindows()
        self._shared_windows: _Windows | None = None
        if redis is not None:
            storage = RedisStorage(
                "async+redis://",
                implementation="redispy",
                # Beside the cache's keys (`<prefix>:...`), never under them: a cache flush
                # of its prefix must not reset anyone's limits.
                key_prefix=f"{prefix}-limits",
                # The app's pool: its timeouts and retry policy, one set of connections.
                connection_pool=redis.connection_pool,  # type: ignore[arg-type]
            )
            self._shared = MovingWindowRateLimiter(storage)
            self._shared_windows = _RedisWindows(redis)
        self._clock = clock
        self._down_since: float | None = None
        # The first timeout of a run of timeouts with no success since (None: none).
        self._slow_since: float | None = None
        self._next_probe = 0.0
        self._probe_interval = PROBE_MIN_S
        self._recovery_running = False

    @classmethod
    def in_process(cls, metrics: RateLimitMetrics | None = None) -> Limiter:
        """Counters in this process only (no Redis): tools, tests, single replicas. Without
        `metrics`, a private registry, so recording never needs a None check."""
        return cls(None, prefix="snipix", metrics=metrics or RateLimitMetrics(Metrics("unknown")))

    @property
    def backend(self) -> str:
        return "redis" if self._shared is not None else "in-process"

    @property
    def degraded(self) -> bool:
        """True while Redis is configured but unusable (limits count per process)."""
        return self._down_since is not None

    async def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Take one event from the window; False (nothing taken) when it is full."""
        return await self._run(lambda limiter: limiter.hit(item, *identifiers))

    async def retry_after_s(self, item: RateLimitItem, *identifiers: str) -> int:
        """Whole seconds until the oldest event leaves the window (at least 1)."""
        stats = await self._run(lambda limiter: limiter.get_window_stats(item, *identifiers))
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def reserve(
        self, name: str, key: str, *, limit: int, window_s: float, now: float
    ) -> tuple[str | None, int]:
        """Take a slot in window `name`/`key` (at most `limit` in any `window_s` seconds up
        to `now`, a Unix time). `(slot, s)`: taken, and the window stays full for `s`
        seconds after it (0: room is left); `(None, s)`: full, wait `s` seconds."""
        slot = uuid.uuid4().hex
        taken, wait = await self._run_windows(
            lambda windows: windows.reserve(
                self._window_key(name, key), slot, now=now, window_s=window_s, limit=limit
            )
        )
        full_s = max(1, math.ceil(wait)) if wait > 0 else 0
        if taken:
            return slot, full_s
        return None, max(1, full_s)

    async def release(self, name: str, key: str, slot: str) -> None:
        """Give one slot back (a no-op when it already left the window)."""
        await self._run_windows(lambda windows: windows.release(self._window_key(name, key), slot))

    async def clear_window(self, name: str, key: str) -> None:
        """Give every slot of `name`/`key` back."""
        await self._run_windows(lambda windows: windows.clear(self._window_key(name, key)))

    def _window_key(self, name: str, key: str) -> str:
        return f"{self._key_prefix}:{name}:{key}"

    async def _run_windows[T](self, call: Callable[[_Windows], Awaitable[T]]) -> T:
        return await self._with_fallback(self._shared_windows, self._local_windows, call)

    async def _run[T](self, call: Callable[[MovingWindowRateLimiter], Awaitable[T]]) -> T:
        return await self._with_fallback(self._shared, self._local, call)

    async def _with_fallback[B, T](
        self, shared: B | None, local: B, call: Callable[[B], Awaitable[T]]
    ) -> T:
        if shared is not None:
            if self._down_since is not None and not self._recovery_running:
                # No recovery loop (a tool, a test without the app): probe when one is due.
                await self.probe()
            if self._down_since is None:
                try:
                    answer = await call(shared)
                except (RedisError, OSError) as error:
                    self._failed(error)
                else:
                    self._slow_since = None
                    return answer
        return await call(local)

    def _failed(self, error: BaseException) -> None:
        self.metrics.storage_failed()
        now = self._clock()
        if self._down_since is None and isinstance(error, RedisTimeout | TimeoutError):
            if self._slow_since is None:
                self._slow_since = now
            if now - self._slow_since < SLOW_IS_DOWN_AFTER_S:
                log.info("rate limit storage slow; this call counted in process")
                return
        self._slow_since = None
        if self._down_since is None:
            self._down_since = now
            self._probe_interval = PROBE_MIN_S
            self.metrics.degraded(True)
            log.warning(
                "rate limit storage unavailable; limits are counted per process",
                error_class=type(error).__name__,
            )
        else:
            self._probe_interval = min(PROBE_MAX_S, self._probe_interval * 2)
        self._next_probe = now + self._probe_interval

    async def probe(self) -> None:
        """While Redis is down and a probe is due: PING it, and use it again if it answers."""
        if self._redis is None or self._down_since is None:
            return
        if self._clock() < self._next_probe:
            return
        try:
            await self._redis.ping()
        except (RedisError, OSError) as error:
            self._failed(error)
            return
        log.info(
            "rate limit storage recovered; limits are shared again",
            down_s=round(self._clock() - self._down_since, 1),
        )
        self._down_since = None
        self.metrics.degraded(False)

    async def run_recovery(self, stop: asyncio.Event, interval_s: float = 0.25) -> None:
        """Until `stop`: probe Redis while it is down, so requests never wait for it."""
        self._recovery_running = True
        try:
            while not stop.is_set():
                await self.probe()
                try:
                    await asyncio.wait_for(stop.wait(), timeout=interval_s)
                except TimeoutError:
                    continue
        finally:
            self._recovery_running = False
