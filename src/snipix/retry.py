"""One retry policy for database and cache calls: exponential backoff with full jitter.

What may be retried is decided by `is_safe_to_retry`, never by the call site's hopes:

- reads and idempotent writes (an upsert by `_id` to fixed values, a cache SET/DEL) are
  retried on errors that say the server could not be reached or was not the primary
  (`AutoReconnect`, `NotPrimaryError`, `NetworkTimeout`, a server selection timeout) and on
  errors the server labelled `RetryableWriteError` / `TransientTransactionError`;
- other writes (an `$inc`, an insert whose id the server chose) are left to the driver's
  retryable writes (one retry, deduplicated by the server with a transaction number): a
  second attempt here, after the driver's, could apply them twice. Requests that carry an
  `Idempotency-Key` are safe for the *client* to repeat; the service replays their result.
- never: duplicate keys, validation failures, auth errors, or anything not listed above.

Every retry is logged at WARNING (attempt, error class, wait) and counted in
`snipix_retries_total`. Attempts stop at `attempts` or when the next wait would pass the
budget, so a request facing a dead database fails in about the server selection timeout,
not in attempts x timeout.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Final

import structlog
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from snipix.observability.metrics import Metrics
from snipix.settings import Settings

log = structlog.get_logger(__name__)

_LABELS: Final = ("RetryableWriteError", "TransientTransactionError")
# Server error codes that are never transient: unauthorized (13), auth failed (18),
# document validation (121), and the duplicate key family handled by DuplicateKeyError.
_PERMANENT_CODES: Final = frozenset({13, 18, 121})


class Kind(StrEnum):
    """What the retried call does, which decides what is safe to repeat."""

    READ = "read"
    IDEMPOTENT_WRITE = "idempotent_write"
    WRITE = "write"
    CACHE = "cache"


def is_safe_to_retry(error: BaseException, kind: Kind) -> bool:
    """True when repeating the call cannot apply anything twice or hide a real error."""
    if kind is Kind.CACHE:
        # Cache commands are idempotent (GET, SET with a fence, DEL, INCR of a generation
        # whose only use is to differ) and a failure is never a user's error.
        return isinstance(error, RedisConnectionError | RedisTimeoutError | OSError)
    if kind is Kind.WRITE:
        return False
    if isinstance(error, DuplicateKeyError):
        return False
    if isinstance(error, OperationFailure) and error.code in _PERMANENT_CODES:
        return False
    if isinstance(error, PyMongoError) and any(error.has_error_label(x) for x in _LABELS):
        return True
    # AutoReconnect covers NotPrimaryError and NetworkTimeout.
    return isinstance(error, AutoReconnect | ServerSelectionTimeoutError)


class RetryMetrics:
    """`snipix_retries_total{operation, error_class}`, in the registry of the app that retries."""

    def __init__(self, metrics: Metrics) -> None:
        self.retries = metrics.counter(
            "snipix_retries",
            "Operations the service retried, by operation and the error that caused it.",
            ["operation", "error_class"],
        )

    def retried(self, operation: str, error_class: str) -> None:
        """Count one retry of `operation` (a fixed name in code) after `error_class`."""
        self.retries.labels(operation=operation, error_class=error_class).inc()


class _OutOfBudget(stop_base):
    """Stop when the time spent plus the longest next wait would pass the budget."""

    def __init__(self, policy: RetryPolicy, started: float) -> None:
        self._policy = policy
        self._started = started

    def __call__(self, retry_state: RetryCallState) -> bool:
        policy = self._policy
        # Attempt n of tenacity is attempt n + 1 of the call (the first ran before it).
        next_wait: float = min(policy.cap_s, policy.base_s * 2.0**retry_state.attempt_number)
        return bool(time.monotonic() - self._started + next_wait > policy.budget_s)


class RetryPolicy:
    """Backoff `base * 2**n` capped at `cap`, full jitter (a uniform wait in [0, that])."""

    def __init__(
        self,
        *,
        attempts: int = 3,
        base_s: float = 0.05,
        cap_s: float = 1.0,
        budget_s: float = 2.0,
        metrics: RetryMetrics | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.attempts = attempts
        self.base_s = base_s
        self.cap_s = cap_s
        self.budget_s = budget_s
        self._metrics = metrics

    @classmethod
    def from_settings(cls, settings: Settings, metrics: RetryMetrics | None = None) -> RetryPolicy:
        return cls(
            attempts=settings.retry_attempts,
            base_s=settings.retry_base_ms / 1000,
            cap_s=settings.retry_cap_ms / 1000,
            # A request waits for an unreachable database about one server selection, in
            # total: the fail-fast bound of the degradation contract.
            budget_s=settings.mongodb_server_selection_timeout_ms / 1000,
            metrics=metrics,
        )

    async def run[T](
        self, call: Callable[[], Awaitable[T]], *, operation: str, kind: Kind = Kind.READ
    ) -> T:
        """Await `call()`, repeating it on safe errors; the last error propagates as is.

        The first attempt is a plain await: the retry machinery is built only after a
        failure, so the common path (a cache hit, a read that works) pays nothing for it.
        """
        started = time.monotonic()
        try:
            return await call()
        except Exception as error:
            if self.attempts == 1 or not is_safe_to_retry(error, kind):
                raise
            first_wait = random.uniform(0, min(self.cap_s, self.base_s))  # noqa: S311
            if time.monotonic() - started + first_wait > self.budget_s:
                raise
            self._note(operation, kind, 1, error, first_wait)
        await asyncio.sleep(first_wait)

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            wait_s = state.next_action.sleep if state.next_action is not None else 0.0
            self._note(operation, kind, state.attempt_number + 1, error, wait_s)

        retrying = AsyncRetrying(
            stop=stop_any(stop_after_attempt(self.attempts - 1), _OutOfBudget(self, started)),
            # Full jitter: a uniform wait in [0, min(cap, base * 2**n)].
            wait=wait_random_exponential(multiplier=self.base_s * 2, max=self.cap_s),
            retry=retry_if_exception(lambda error: is_safe_to_retry(error, kind)),
            before_sleep=before_sleep,
            reraise=True,
        )

        async def attempt() -> T:
            # A coroutine function: tenacity calls anything else synchronously.
            return await call()

        return await retrying(attempt)

    def _note(
        self, operation: str, kind: Kind, attempt: int, error: BaseException | None, wait_s: float
    ) -> None:
        log.warning(
            "retrying",
            operation=operation,
            kind=kind.value,
            attempt=attempt,
            error_class=type(error).__name__,
            wait_ms=round(wait_s * 1000, 1),
        )
        if self._metrics is not None:
            self._metrics.retried(operation, type(error).__name__)


def is_connectivity_error(error: BaseException) -> bool:
    """A database error that means "not reachable now", as opposed to a bad request."""
    return isinstance(error, ConnectionFailure)
