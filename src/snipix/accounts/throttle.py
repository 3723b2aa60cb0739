"""Login failure limits, per account and per client address (the `limits` library).

Failures are counted, not attempts: a person who types the right password is never slowed
down by their own successes. Once an account (the normalised email) or an address has
failed `SNIPIX_LOGIN_FAILURES_PER_*` times within `SNIPIX_LOGIN_FAILURE_WINDOW_S` (a
moving window), every further attempt for it is refused with 429 and `Retry-After`, the
right password included, until the oldest failure leaves the window. A success clears the
account's count (not the address's: a caller with one working account must not be able to
reset the count it builds up against others).

The counts live where the service's rate limits live (`snipix.security.limiter`):
in Redis when REDIS_URL is set, so every replica sees the same failures, else (and while
Redis is unreachable) in process memory, where N replicas allow up to N times the limit.
Accounts are keyed by a hash of the email, so no address is written to Redis.
"""

from __future__ import annotations

import hashlib
import math
from typing import Final

from limits import RateLimitItemPerSecond

from snipix.errors import RateLimited
from snipix.security.limiter import Limiter
from snipix.settings import Settings

NAMESPACE: Final = "snipix-login"


def _account_key(account: str) -> str:
    return hashlib.sha256(account.encode()).hexdigest()[:32]


class LoginThrottle:
    def __init__(
        self, *, per_account: int, per_ip: int, window_s: int, limiter: Limiter | None = None
    ) -> None:
        self._limiter = limiter if limiter is not None else Limiter.in_process()
        self._account = RateLimitItemPerSecond(per_account, window_s, namespace=NAMESPACE)
        self._ip = RateLimitItemPerSecond(per_ip, window_s, namespace=NAMESPACE)

    @classmethod
    def from_settings(cls, settings: Settings, limiter: Limiter | None = None) -> LoginThrottle:
        return cls(
            per_account=settings.login_failures_per_account,
            per_ip=settings.login_failures_per_ip,
            window_s=settings.login_failure_window_s,
            limiter=limiter,
        )

    async def check(self, account: str, ip: str) -> None:
        """`RateLimited` (429 + Retry-After) when either count is used up."""
        waits = [
            await self._wait_s(item, kind, key)
            for item, kind, key in (
                (self._account, "account", _account_key(account)),
                (self._ip, "ip", ip),
            )
        ]
        wait_s = max(waits)
        if wait_s > 0:
            raise RateLimited(
                f"Too many failed sign-in attempts. Try again in {_in_words(wait_s)}.",
                details={"retryAfterSeconds": wait_s},
                headers={"Retry-After": str(wait_s)},
            )

    async def failed(self, account: str, ip: str) -> None:
        await self._limiter.hit(self._account, "account", _account_key(account))
        await self._limiter.hit(self._ip, "ip", ip)

    async def succeeded(self, account: str) -> None:
        await self._limiter.clear(self._account, "account", _account_key(account))

    async def _wait_s(self, item: RateLimitItemPerSecond, kind: str, key: str) -> int:
        if await self._limiter.test(item, kind, key):
            return 0
        return await self._limiter.retry_after_s(item, kind, key)


def _in_words(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"
