"""Login failure limits, per account and per client address.

Failures are counted, not attempts: a person who types the right password is never slowed
down by their own successes. Once an account (the normalised email) or an address has
failed `SNIPIX_LOGIN_FAILURES_PER_*` times within `SNIPIX_LOGIN_FAILURE_WINDOW_S` (a
moving window), every further attempt for it is refused with 429 and `Retry-After`, the
right password included, until the oldest failure leaves the window. A success clears the
account's count (not the address's: a caller with one working account must not be able to
reset the count it builds up against others).

The limit holds under concurrency: an attempt takes a slot in both windows *before* the
password is checked (`begin`), atomically, and gives it back only when the password was
right (`succeeded`) or the attempt never reached the check (`abandoned`). A wrong password
keeps its slots: they are its failure. So however many sign-ins arrive at once, at most
the limit of password checks run per account and per address in any window; the others
are refused before any is made.

The windows live where the service's rate limits live (`snipix.security.limiter`): in
Redis when REDIS_URL is set, so every replica sees the same failures, else (and while
Redis is unreachable or slow) in process memory, where N replicas allow up to N times the
limit. Accounts are keyed by a hash of the email, so no address is written to Redis.

A lockout is never forgotten, whatever happens to Redis: the failure that fills a window
also writes the lockout to the database (`LockoutRepository`, `login_lockouts`, with its
end), and every attempt reads the database's lockouts before it takes a slot. A switch to
in-process counting (Redis hung, slow or restarted empty) can then cost at most one more
window's worth of failures below the limit, never a lockout already reached.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

from snipix.clock import Clock, utc_now
from snipix.errors import RateLimited
from snipix.security.limiter import Limiter
from snipix.settings import Settings

# The window names, also the prefixes of lockout ids (`account:<hash>`, `ip:<address>`).
ACCOUNT: Final = "account"
ADDRESS: Final = "ip"


def _account_key(account: str) -> str:
    return hashlib.sha256(account.encode()).hexdigest()[:32]


class Lockouts(Protocol):
    """Where lockouts outlive the windows (`accounts.repository.LockoutRepository`)."""

    async def until(self, keys: list[str], now: datetime) -> datetime | None: ...

    async def lock(self, key: str, until: datetime) -> None: ...

    async def unlock(self, key: str) -> None: ...


@dataclass(frozen=True)
class Attempt:
    """One sign-in's slots in the account's and the address's windows, and for each how
    long its window stays full after it (0: room left)."""

    account_key: str
    ip: str
    account_slot: str
    ip_slot: str
    at: datetime
    account_full_s: int = 0
    ip_full_s: int = 0


def _lockout_id(kind: str, key: str) -> str:
    return f"{kind}:{key}"


class LoginThrottle:
    def __init__(
        self,
        *,
        per_account: int,
        per_ip: int,
        window_s: int,
        limiter: Limiter | None = None,
        lockouts: Lockouts | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._limiter = limiter if limiter is not None else Limiter.in_process()
        self._lockouts = lockouts
        self._per_account = per_account
        self._per_ip = per_ip
        self._window_s = window_s
        self._clock = clock

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        limiter: Limiter | None = None,
        lockouts: Lockouts | None = None,
        clock: Clock = utc_now,
    ) -> LoginThrottle:
        return cls(
            per_account=settings.login_failures_per_account,
            per_ip=settings.login_failures_per_ip,
            window_s=settings.login_failure_window_s,
            limiter=limiter,
            lockouts=lockouts,
            clock=clock,
        )

    async def begin(self, account: str, ip: str) -> Attempt:
        """Take this attempt's slots, or `RateLimited` (429 + Retry-After) with nothing
        taken when either is locked out or its window is full."""
        at = self._clock()
        now = at.timestamp()
        account_key = _account_key(account)
        if self._lockouts is not None:
            locked_until = await self._lockouts.until(
                [_lockout_id(ACCOUNT, account_key), _lockout_id(ADDRESS, ip)], at
            )
            if locked_until is not None:
                raise _limited(max(1, math.ceil((locked_until - at).total_seconds())))
        account_slot, account_full_s = await self._limiter.reserve(
            ACCOUNT, account_key, limit=self._per_account, window_s=self._window_s, now=now
        )
        if account_slot is None:
            await self._lock(ACCOUNT, account_key, at, account_full_s)
            raise _limited(account_full_s)
        ip_slot, ip_full_s = await self._limiter.reserve(
            ADDRESS, ip, limit=self._per_ip, window_s=self._window_s, now=now
        )
        if ip_slot is None:
            await self._limiter.release(ACCOUNT, account_key, account_slot)
            await self._lock(ADDRESS, ip, at, ip_full_s)
            raise _limited(ip_full_s)
        return Attempt(account_key, ip, account_slot, ip_slot, at, account_full_s, ip_full_s)

    async def failed(self, attempt: Attempt) -> None:
        """The password was wrong: the attempt's slots stay taken, as its failure. If they
        filled a window, that lockout is written where every replica reads it."""
        await self._lock(ACCOUNT, attempt.account_key, attempt.at, attempt.account_full_s)
        await self._lock(ADDRESS, attempt.ip, attempt.at, attempt.ip_full_s)

    async def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the account's failures are forgiven, and this attempt
        no longer counts against its address."""
        await self._limiter.clear_window(ACCOUNT, attempt.account_key)
        await self._limiter.release(ADDRESS, attempt.ip, attempt.ip_slot)

    async def forgive(self, account: str) -> None:
        """The account proved its owner another way (a password reset from its mailbox):
        its failures and its lockout end. The address's stay: they are the caller's."""
        key = _account_key(account)
        await self._limiter.clear_window(ACCOUNT, key)
        if self._lockouts is not None:
            await self._lockouts.unlock(_lockout_id(ACCOUNT, key))

    async def abandoned(self, attempt: Attempt) -> None:
        """The attempt ended before its password was judged (an error): give both back."""
        await self._limiter.release(ACCOUNT, attempt.account_key, attempt.account_slot)
        await self._limiter.release(ADDRESS, attempt.ip, attempt.ip_slot)

    async def _lock(self, kind: str, key: str, at: datetime, full_s: int) -> None:
        if self._lockouts is not None and full_s > 0:
            await self._lockouts.lock(_lockout_id(kind, key), at + timedelta(seconds=full_s))


def _limited(wait_s: int) -> RateLimited:
    return RateLimited(
        f"Too many failed sign-in attempts. Try again in {_in_words(wait_s)}.",
        details={"retryAfterSeconds": wait_s},
        headers={"Retry-After": str(wait_s)},
    )


def _in_words(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"
