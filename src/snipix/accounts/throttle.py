"""Login failure limits, per account and per client address (the `limits` library).

Failures are counted, not attempts: a person who types the right password is never slowed
down by their own successes. Once an account (the normalised email) or an address has
failed `SNIPIX_LOGIN_FAILURES_PER_*` times within `SNIPIX_LOGIN_FAILURE_WINDOW_S` (a
moving window), every further attempt for it is refused with 429 and `Retry-After`, the
right password included, until the oldest failure leaves the window. A success clears the
account's count (not the address's: a caller with one working account must not be able to
reset the count it builds up against others).

Counts live in process memory (`limits`' in-memory storage): each replica counts its own
failures, so N replicas allow up to N times the limit. A shared Redis storage is the next
step (`limits.aio.storage.RedisStorage`, same strategy, same keys).
"""

from __future__ import annotations

import math
import time
from typing import Final

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from snipix.errors import RateLimited
from snipix.settings import Settings

NAMESPACE: Final = "snipix-login"


class LoginThrottle:
    def __init__(self, *, per_account: int, per_ip: int, window_s: int) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._account = RateLimitItemPerSecond(per_account, window_s, namespace=NAMESPACE)
        self._ip = RateLimitItemPerSecond(per_ip, window_s, namespace=NAMESPACE)

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginThrottle:
        return cls(
            per_account=settings.login_failures_per_account,
            per_ip=settings.login_failures_per_ip,
            window_s=settings.login_failure_window_s,
        )

    async def check(self, account: str, ip: str) -> None:
        """`RateLimited` (429 + Retry-After) when either count is used up."""
        waits = [
            await self._wait_s(item, kind, key)
            for item, kind, key in ((self._account, "account", account), (self._ip, "ip", ip))
        ]
        wait_s = max(waits)
        if wait_s > 0:
            raise RateLimited(
                f"Too many failed sign-in attempts. Try again in {_in_words(wait_s)}.",
                details={"retryAfterSeconds": wait_s},
                headers={"Retry-After": str(wait_s)},
            )

    async def failed(self, account: str, ip: str) -> None:
        await self._limiter.hit(self._account, "account", account)
        await self._limiter.hit(self._ip, "ip", ip)

    async def succeeded(self, account: str) -> None:
        await self._limiter.clear(self._account, "account", account)

    async def _wait_s(self, item: RateLimitItemPerSecond, kind: str, key: str) -> int:
        if await self._limiter.test(item, kind, key):
            return 0
        reset_at, _remaining = await self._limiter.get_window_stats(item, kind, key)
        return max(1, math.ceil(reset_at - time.time()))


def _in_words(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"
