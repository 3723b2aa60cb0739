"""Sign-in lockouts outlive the windows that counted them: kept in the database."""

from __future__ import annotations

from datetime import timedelta

import pytest

from snipix.accounts.repository import LockoutRepository
from snipix.accounts.throttle import LoginThrottle
from snipix.db.client import Database
from snipix.errors import RateLimited
from snipix.observability.metrics import Metrics
from snipix.security.limiter import Limiter
from snipix.security.metrics import RateLimitMetrics
from tests.support import Clock

WINDOW_S = 600


def replica(db: Database, clock: Clock) -> LoginThrottle:
    """A replica counting in its own process (no Redis), sharing only the database."""
    return LoginThrottle(
        per_account=3,
        per_ip=100,
        window_s=WINDOW_S,
        limiter=Limiter(None, prefix="t", metrics=RateLimitMetrics(Metrics("test"))),
        lockouts=LockoutRepository(db),
        clock=clock,
    )


async def test_a_lockout_reached_on_one_replica_holds_on_another(db: Database) -> None:
    """Three failures on one replica lock the account on a replica that counted none of
    them, until the window ends; the right password is refused meanwhile."""
    clock = Clock()
    first, second = replica(db, clock), replica(db, clock)
    for _ in range(3):
        await first.failed(await first.begin("alice@example.com", "10.0.0.1"))
    with pytest.raises(RateLimited) as refused:
        await second.begin("alice@example.com", "10.0.0.2")
    assert WINDOW_S - 5 <= int(refused.value.headers["Retry-After"]) <= WINDOW_S
    # Another account on the same replica is not affected.
    await second.succeeded(await second.begin("bob@example.com", "10.0.0.2"))
    clock.advance(timedelta(seconds=WINDOW_S + 1))
    await second.succeeded(await second.begin("alice@example.com", "10.0.0.2"))


async def test_a_right_password_in_the_last_slot_locks_nothing(db: Database) -> None:
    """Two typos and then the right password: no lockout is written, and the account has
    its whole limit again."""
    clock = Clock()
    throttle = replica(db, clock)
    for _ in range(2):
        await throttle.failed(await throttle.begin("carol@example.com", "10.0.0.3"))
    await throttle.succeeded(await throttle.begin("carol@example.com", "10.0.0.3"))
    assert await db["login_lockouts"].count_documents({}) == 0
    for _ in range(2):
        await throttle.failed(await throttle.begin("carol@example.com", "10.0.0.3"))
    await throttle.succeeded(await throttle.begin("carol@example.com", "10.0.0.3"))
