"""The retry policy: what it repeats, how often, how long, and what it leaves alone."""

from __future__ import annotations

import pytest
import structlog
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    NotPrimaryError,
    OperationFailure,
    ServerSelectionTimeoutError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from snipix.observability.logging import configure_logging
from snipix.observability.metrics import Metrics
from snipix.retry import Kind, RetryMetrics, RetryPolicy, is_safe_to_retry
from snipix.settings import Settings


class Flaky:
    """Fails with `error` the first `failures` times, then answers."""

    def __init__(self, error: BaseException, failures: int) -> None:
        self.error = error
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def retries_counted(metrics: Metrics) -> float:
    return sum(
        sample.value
        for family in metrics.registry.collect()
        if family.name == "snipix_retries"
        for sample in family.samples
        if sample.name == "snipix_retries_total"
    )


def policy(metrics: Metrics | None = None, **kwargs: float) -> RetryPolicy:
    options: dict[str, float] = {"base_s": 0.001, "cap_s": 0.005, "budget_s": 2.0} | kwargs
    counted = RetryMetrics(metrics) if metrics is not None else None
    return RetryPolicy(attempts=3, metrics=counted, **options)


async def test_a_read_that_hits_a_failover_is_retried_and_succeeds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two network errors then an answer: the caller sees the answer; two retries logged."""
    configure_logging(Settings(_env_file=None, log_format="json"))
    metrics = Metrics("test")
    call = Flaky(AutoReconnect("connection reset"), failures=2)
    assert await policy(metrics).run(call, operation="projects.get") == "ok"
    assert call.calls == 3
    assert retries_counted(metrics) == 2
    logged = capsys.readouterr()
    lines = [line for line in (logged.out + logged.err).splitlines() if "retrying" in line]
    assert len(lines) == 2
    assert "attempt" in lines[0]
    assert "AutoReconnect" in lines[0]


async def test_gives_up_after_three_attempts_with_the_original_error() -> None:
    """A database that stays away fails the call with its own error after 3 attempts."""
    call = Flaky(NotPrimaryError("not primary"), failures=10)
    with pytest.raises(NotPrimaryError):
        await policy().run(call, operation="projects.get")
    assert call.calls == 3


@pytest.mark.parametrize(
    "error",
    [
        DuplicateKeyError("E11000 duplicate key"),
        OperationFailure("Document failed validation", code=121),
        OperationFailure("Authentication failed.", code=18),
        ValueError("a bug"),
    ],
    ids=["duplicate-key", "validation", "auth", "bug"],
)
async def test_errors_that_are_not_transient_are_never_retried(error: Exception) -> None:
    """Duplicate keys, validation and auth failures, and bugs fail at once."""
    call = Flaky(error, failures=10)
    with pytest.raises(type(error)):
        await policy().run(call, operation="projects.get")
    assert call.calls == 1


async def test_plain_writes_are_left_to_the_drivers_retryable_writes() -> None:
    """A write that may have been applied is not repeated by the service."""
    call = Flaky(AutoReconnect("connection reset"), failures=1)
    with pytest.raises(AutoReconnect):
        await policy().run(call, operation="projects.update", kind=Kind.WRITE)
    assert call.calls == 1


def test_labelled_errors_and_idempotent_writes_are_retryable() -> None:
    """The server's own labels, and idempotent writes after network errors, are safe."""
    labelled = OperationFailure(
        "interrupted", code=11602, details={"errorLabels": ["RetryableWriteError"]}
    )
    assert is_safe_to_retry(labelled, Kind.IDEMPOTENT_WRITE)
    assert is_safe_to_retry(AutoReconnect("reset"), Kind.IDEMPOTENT_WRITE)
    assert is_safe_to_retry(ServerSelectionTimeoutError("no server"), Kind.READ)
    assert not is_safe_to_retry(AutoReconnect("reset"), Kind.WRITE)
    assert is_safe_to_retry(RedisConnectionError("refused"), Kind.CACHE)
    assert not is_safe_to_retry(AutoReconnect("reset"), Kind.CACHE)


async def test_the_time_budget_bounds_a_dead_database() -> None:
    """With a long backoff, attempts stop when the next wait would pass the budget: the
    waits the policy chose (its log) add up to no more than the budget."""
    call = Flaky(AutoReconnect("down"), failures=10)
    with structlog.testing.capture_logs() as logs, pytest.raises(AutoReconnect):
        await policy(base_s=0.2, cap_s=0.4, budget_s=0.3).run(call, operation="projects.get")
    waits_s = [entry["wait_ms"] / 1000 for entry in logs if entry["event"] == "retrying"]
    assert sum(waits_s) <= 0.3 + 0.001  # the log rounds each wait to 0.1 ms
    assert call.calls < 3


async def test_waits_grow_and_are_jittered() -> None:
    """Backoff is exponential with full jitter: each wait is drawn below a bound that
    doubles per attempt, up to the cap, and the draws differ. Read from the waits the
    policy chose (its log), not from a stopwatch a busy machine would stretch."""
    base_s, cap_s = 0.02, 0.05
    chosen: list[list[float]] = []
    for _ in range(5):
        call = Flaky(AutoReconnect("reset"), failures=2)
        with structlog.testing.capture_logs() as logs:
            await policy(base_s=base_s, cap_s=cap_s).run(call, operation="projects.get")
        chosen.append([entry["wait_ms"] / 1000 for entry in logs if entry["event"] == "retrying"])
    for first, second in chosen:
        assert 0 <= first <= base_s
        assert 0 <= second <= min(cap_s, 2 * base_s)
    assert len({wait for waits in chosen for wait in waits}) > 1
