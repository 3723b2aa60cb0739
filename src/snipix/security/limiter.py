"""Moving-window counters for rate limits: in Redis when it is configured, in process otherwise.

`limits` counts (its moving window: at most N events in any W seconds, exactly, so a burst
of N + M requests lets N through however it is timed). With REDIS_URL the counters live in
Redis, shared by every replica, through `limits`' redis-py implementation over the app's own
connection pool (so REDIS_TIMEOUT_MS and the no-retry policy of `app._redis_client` apply;
no second Redis client library). Without Redis they live in this process.

Redis failing (down, slower than REDIS_TIMEOUT_MS) never fails a request and never lets
everything through: the call is counted in process instead. One WARNING per outage, every
failed call counted (`snipix_rate_limit_storage_errors_total`), `snipix_rate_limit_fallback`
1 for the outage's duration. While Redis is down requests do not touch it: a background
probe (0.5 s doubling to 2 s, `run_recovery`) finds it again. The in-process counts start
empty, so across a switch a client can get up to one more window's worth.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Final

import structlog
from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from snipix.observability.metrics import Metrics

log = structlog.get_logger(__name__)

# The same back-off as the cache's probe (cache/service.py): a refused connection costs
# nothing, a hung Redis one timeout per probe, never one per request.
PROBE_MIN_S: Final = 0.5
PROBE_MAX_S: Final = 2.0


class Limiter:
    """Counts events per key in a moving window; Redis-backed with an in-process fallback."""

    def __init__(self, redis: Redis | None, *, prefix: str, metrics: Metrics) -> None:
        self._metrics = metrics
        self._redis = redis
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared: MovingWindowRateLimiter | None = None
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
        self._down_since: float | None = None
        self._next_probe = 0.0
        self._probe_interval = PROBE_MIN_S
        self._recovery_running = False

    @classmethod
    def in_process(cls, metrics: Metrics | None = None) -> Limiter:
        """Counters in this process only (no Redis): tools, tests, single replicas."""
        return cls(None, prefix="snipix", metrics=metrics or Metrics("unknown"))

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

    async def test(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Whether one more event would fit, without taking it."""
        return await self._run(lambda limiter: limiter.test(item, *identifiers))

    async def retry_after_s(self, item: RateLimitItem, *identifiers: str) -> int:
        """Whole seconds until the oldest event leaves the window (at least 1)."""
        stats = await self._run(lambda limiter: limiter.get_window_stats(item, *identifiers))
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def clear(self, item: RateLimitItem, *identifiers: str) -> None:
        await self._run(lambda limiter: limiter.clear(item, *identifiers))

    async def _run[T](self, call: Callable[[MovingWindowRateLimiter], Awaitable[T]]) -> T:
        if self._shared is not None:
            if self._down_since is not None and not self._recovery_running:
                # No recovery loop (a tool, a test without the app): probe when one is due.
                await self.probe()
            if self._down_since is None:
                try:
                    return await call(self._shared)
                except (RedisError, OSError) as error:
                    self._failed(error)
        return await call(self._local)

    def _failed(self, error: BaseException) -> None:
        self._metrics.rate_limit_storage_failed()
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            self._probe_interval = PROBE_MIN_S
            self._metrics.rate_limit_degraded(True)
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
        if time.monotonic() < self._next_probe:
            return
        try:
            await self._redis.ping()
        except (RedisError, OSError) as error:
            self._failed(error)
            return
        log.info(
            "rate limit storage recovered; limits are shared again",
            down_s=round(time.monotonic() - self._down_since, 1),
        )
        self._down_since = None
        self._metrics.rate_limit_degraded(False)

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
