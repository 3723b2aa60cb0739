"""Named leases: one holder at a time across replicas, renewable, released, expiring."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pymongo import MongoClient

from snipix.db.client import Database
from snipix.db.leases import COLLECTION, Lease
from snipix.settings import Settings
from tests.support import Clock

TTL = timedelta(minutes=5)


def lease_doc(
    mongo: MongoClient[dict[str, Any]], settings: Settings, name: str
) -> dict[str, Any] | None:
    return mongo[settings.database_name][COLLECTION].find_one({"_id": name})


async def test_one_holder_at_a_time(
    db: Database, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """While one replica holds the lease, another cannot take it."""
    first = Lease(db, "sweep", ttl=TTL, owner="replica-a")
    second = Lease(db, "sweep", ttl=TTL, owner="replica-b")

    assert await first.acquire() is True
    assert await second.acquire() is False
    assert await second.acquire() is False

    held = lease_doc(mongo, settings, "sweep")
    assert held is not None
    assert held["owner"] == "replica-a"


async def test_concurrent_acquires_have_one_winner(db: Database) -> None:
    """Two replicas racing for a free lease: exactly one gets it."""
    leases = [Lease(db, "sweep", ttl=TTL, owner=f"replica-{i}") for i in range(2)]
    results = await asyncio.gather(*(lease.acquire() for lease in leases))
    assert sorted(results) == [False, True]


async def test_the_holder_renews_its_lease(
    db: Database, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """Acquiring again as the holder succeeds and pushes the expiry further out."""
    clock = Clock()
    lease = Lease(db, "sweep", ttl=TTL, owner="replica-a", clock=clock)
    assert await lease.acquire() is True
    before = lease_doc(mongo, settings, "sweep")
    assert before is not None

    clock.advance(timedelta(minutes=1))  # a renewal a minute later
    assert await lease.acquire() is True
    after = lease_doc(mongo, settings, "sweep")
    assert after is not None
    assert after["owner"] == "replica-a"
    assert after["expiresAt"] > before["expiresAt"]
    assert mongo[settings.database_name][COLLECTION].count_documents({}) == 1


async def test_release_lets_another_owner_take_it(
    db: Database, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """Once the holder releases the lease, the other replica takes it."""
    first = Lease(db, "sweep", ttl=TTL, owner="replica-a")
    second = Lease(db, "sweep", ttl=TTL, owner="replica-b")
    assert await first.acquire() is True
    assert await second.acquire() is False

    await first.release()
    assert lease_doc(mongo, settings, "sweep") is None
    assert await second.acquire() is True
    held = lease_doc(mongo, settings, "sweep")
    assert held is not None
    assert held["owner"] == "replica-b"


async def test_release_by_a_non_holder_changes_nothing(
    db: Database, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """A replica that does not hold the lease cannot release someone else's."""
    first = Lease(db, "sweep", ttl=TTL, owner="replica-a")
    second = Lease(db, "sweep", ttl=TTL, owner="replica-b")
    assert await first.acquire() is True

    await second.release()
    held = lease_doc(mongo, settings, "sweep")
    assert held is not None
    assert held["owner"] == "replica-a"
    assert await second.acquire() is False


async def test_an_expired_lease_can_be_taken(
    db: Database, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """A holder that stopped renewing (crashed) blocks the others only until expiry."""
    crashed = Lease(db, "sweep", ttl=TTL, owner="replica-a")
    # Whether the crashed holder's lease has expired is judged by the survivor's clock:
    # moving it on stands for the time passing (no real wait, no race with a short TTL).
    clock = Clock()
    survivor = Lease(db, "sweep", ttl=TTL, owner="replica-b", clock=clock)
    assert await crashed.acquire() is True
    assert await survivor.acquire() is False

    clock.advance(TTL - timedelta(seconds=10))
    assert await survivor.acquire() is False, "taken before the lease expired"
    clock.advance(timedelta(seconds=20))
    assert await survivor.acquire() is True
    held = lease_doc(mongo, settings, "sweep")
    assert held is not None
    assert held["owner"] == "replica-b"
    assert held["expiresAt"] > clock() + TTL - timedelta(minutes=1)

    # The late holder can neither take it back nor release it from under the new holder.
    assert await crashed.acquire() is False
    await crashed.release()
    assert await survivor.acquire() is True
    held = lease_doc(mongo, settings, "sweep")
    assert held is not None
    assert held["owner"] == "replica-b"


async def test_leases_with_different_names_are_independent(db: Database) -> None:
    """Holding one named lease does not block another name."""
    assert await Lease(db, "sweep", ttl=TTL, owner="replica-a").acquire() is True
    assert await Lease(db, "reindex", ttl=TTL, owner="replica-b").acquire() is True
