"""Migrations run once each, in order, never twice at the same time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import MongoClient

from snipix.db.client import Database
from snipix.db.migrations import COLLECTION, LOCK_ID, Migration, MigrationLocked, MigrationRunner
from snipix.settings import Settings
from tests.support import until


@pytest.fixture
def database_name(empty_database_name: str) -> str:
    """A database nothing has touched: these tests run their own migrations on it."""
    return empty_database_name


def counting(name: str, calls: list[str], delay_s: float = 0.0) -> Migration:
    async def apply(db: Database) -> None:
        calls.append(name)
        await asyncio.sleep(delay_s)
        await db["projects"].update_many({}, {"$push": {"applied": name}})

    return Migration(name, f"test migration {name}", apply)


async def test_pending_migrations_apply_in_order_once(
    db: Database, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    await db["projects"].insert_one({"_id": "p1"})
    calls: list[str] = []
    migrations = [counting("0001_a", calls), counting("0002_b", calls)]
    runner = MigrationRunner(db, migrations)
    assert (await runner.status()).pending == ["0001_a", "0002_b"]

    assert await runner.migrate() == ["0001_a", "0002_b"]
    assert await runner.migrate() == []
    assert calls == ["0001_a", "0002_b"]
    assert mongo[settings.database_name]["projects"].find_one({"_id": "p1"}) == {
        "_id": "p1",
        "applied": ["0001_a", "0002_b"],
    }
    status = await runner.status()
    assert status.applied == ["0001_a", "0002_b"]
    assert status.pending == []
    # The lock is released after a run.
    assert mongo[settings.database_name][COLLECTION].find_one({"_id": LOCK_ID}) is None


async def test_a_new_migration_applies_on_top_of_the_previous_version(db: Database) -> None:
    calls: list[str] = []
    await MigrationRunner(db, [counting("0001_a", calls)]).migrate()
    applied = await MigrationRunner(
        db, [counting("0001_a", calls), counting("0002_b", calls)]
    ).migrate()
    assert applied == ["0002_b"]
    assert calls == ["0001_a", "0002_b"]


async def test_concurrent_runners_apply_each_migration_once(db: Database) -> None:
    """Two replicas starting together: one migrates, the other waits and applies nothing."""
    calls: list[str] = []
    # The delay stands for a migration's work (it keeps the lock held a while); the result
    # is the same whichever runner gets the lock, and whenever the other one looks.
    migrations = [counting("0001_slow", calls, delay_s=0.5)]
    first, second = MigrationRunner(db, migrations), MigrationRunner(db, migrations)
    results = await asyncio.gather(first.migrate(), second.migrate())
    assert sorted(results) == [[], ["0001_slow"]]
    assert calls == ["0001_slow"]


async def test_failed_migration_is_not_recorded_and_runs_again(db: Database) -> None:
    attempts: list[int] = []

    async def flaky(_db: Database) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("disk full")

    runner = MigrationRunner(db, [Migration("0001_flaky", "fails once", flaky)])
    with pytest.raises(RuntimeError, match="disk full"):
        await runner.migrate()
    assert (await runner.status()).pending == ["0001_flaky"]
    assert await runner.migrate() == ["0001_flaky"]


async def test_held_lock_times_out_clearly(db: Database) -> None:
    holder = MigrationRunner(db, [], lock_ttl_s=60)
    await holder._acquire()
    waiter = MigrationRunner(db, [counting("0001_a", [])], wait_s=0.3)
    with pytest.raises(MigrationLocked, match="locked by"):
        await waiter.migrate()
    await holder._release()


async def test_expired_lock_of_a_crashed_runner_is_taken_over(
    db: Database, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    crashed = MigrationRunner(db, [], lock_ttl_s=0.01)
    await crashed._acquire()  # and never releases
    lock = mongo[settings.database_name][COLLECTION].find_one({"_id": LOCK_ID})
    assert lock is not None
    # Expired for the database once the clock's millisecond (all it stores) is past it.
    expires_at = lock["expiresAt"] + timedelta(milliseconds=1)
    await until(lambda: datetime.now(UTC) >= expires_at, what="the crashed runner's lock to expire")
    assert await MigrationRunner(db, [counting("0001_a", [])], wait_s=1).migrate() == ["0001_a"]


async def test_database_ahead_of_the_code_is_reported(db: Database) -> None:
    await MigrationRunner(db, [counting("0001_a", []), counting("0002_b", [])]).migrate()
    status = await MigrationRunner(db, [counting("0001_a", [])]).status()
    assert status.unknown == ["0002_b"]
    assert status.as_dict()["status"] == "ahead"


def test_migrations_must_be_declared_in_order() -> None:
    with pytest.raises(ValueError, match="in order"):
        MigrationRunner(None, [counting("0002_b", []), counting("0001_a", [])])  # type: ignore[arg-type]
