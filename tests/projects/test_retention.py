"""The retention sweep: projects deleted longer ago than the window are purged for good,
with everything they own, by one process at a time — from the CLI or the service itself."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database as SyncDatabase

from snipix.app import create_app
from snipix.auth.actor import Actor
from snipix.cache.service import Cache
from snipix.catalogue import MIGRATIONS, PURGED
from snipix.clock import to_millisecond, utc_now_ms
from snipix.db.client import Database
from snipix.db.indexes import ensure_catalogue
from snipix.db.leases import COLLECTION as LEASES
from snipix.db.leases import Lease
from snipix.db.migrations import MigrationRunner
from snipix.db.transactions import UnitOfWork
from snipix.projects.repository import PROJECTS
from snipix.projects.retention import BATCH, LEASE_NAME, RetentionJob
from snipix.projects.service import project_service
from snipix.settings import Settings
from tests.support import Clock, clean_env, run_snipix, running_app, until

RETENTION = timedelta(days=30)
# Collections with a unique index on `projectId` hold one document per project.
ONE_PER_PROJECT = {"timelines", "transcripts"}
SYSTEM_ACTOR = "system:retention"

SyncDb = SyncDatabase[dict[str, Any]]


def project(
    project_id: str, *, deleted_days_ago: float | None, owner: str = "editor-1"
) -> dict[str, Any]:
    now = utc_now_ms()
    deleted_at = (
        to_millisecond(now - timedelta(days=deleted_days_ago)) if deleted_days_ago else None
    )
    created = (deleted_at or now) - timedelta(days=1)
    return {
        "_id": project_id,
        "userId": owner,
        "name": f"Project {project_id}",
        "description": "",
        "status": "draft",
        "tags": [],
        "media": None,
        "createdAt": created,
        "updatedAt": deleted_at or now,
        "version": 2 if deleted_at else 1,
        "isDeleted": deleted_at is not None,
        "deletedAt": deleted_at,
    }


def dependents_of(project_id: str) -> dict[str, list[dict[str, Any]]]:
    """A few documents in every collection a project owns."""
    owned: dict[str, list[dict[str, Any]]] = {}
    for collection, _index in PURGED:
        count = 1 if collection in ONE_PER_PROJECT else 3
        owned[collection] = [
            {
                "_id": f"{project_id}:seeded-{i}",
                "projectId": project_id,
                "userId": f"user-{i}",
                "version": i,
                "start": float(i),
            }
            for i in range(1, count + 1)
        ]
    return owned


def seed(data: SyncDb, *docs: dict[str, Any], owned: bool = True) -> None:
    for doc in docs:
        data[PROJECTS].insert_one(doc)
        if owned:
            for collection, rows in dependents_of(doc["_id"]).items():
                data[collection].insert_many(rows)


def owned_counts(data: SyncDb, project_id: str) -> dict[str, int]:
    return {
        collection: data[collection].count_documents({"projectId": project_id})
        for collection, _index in PURGED
    }


def full_counts(project_id: str) -> dict[str, int]:
    return {collection: len(rows) for collection, rows in dependents_of(project_id).items()}


def project_ids(data: SyncDb) -> set[str]:
    return {doc["_id"] for doc in data[PROJECTS].find({}, {"_id": 1})}


async def prepare(db: Database, settings: Settings) -> None:
    """What the service's start-up does: the validator migration, then the indexes."""
    await MigrationRunner(db, MIGRATIONS).migrate()
    await ensure_catalogue(db, settings)


async def job(
    db: Database,
    *,
    owner: str | None = None,
    ttl: timedelta = timedelta(minutes=10),
    clock: Clock | None = None,
) -> RetentionJob:
    """The sweep as the CLI and the service build it (`clock`: the lease's, to move on)."""
    return RetentionJob(
        project_service(
            db, await UnitOfWork.for_server(db.client), owned=PURGED, cache=Cache.disabled()
        ),
        Lease(db, LEASE_NAME, ttl=ttl, owner=owner, clock=clock or Clock()),
        retention=RETENTION,
    )


def seed_mix(data: SyncDb) -> dict[str, dict[str, Any]]:
    """Expired (31 days), not yet due (29 days), live, and another owner's live project."""
    docs = [
        project("expired", deleted_days_ago=31),
        project("recent", deleted_days_ago=29),
        project("live", deleted_days_ago=None),
        project("other", deleted_days_ago=None, owner="editor-2"),
    ]
    seed(data, *docs)
    return {doc["_id"]: doc for doc in docs}


async def test_an_expired_project_is_purged_with_everything_it_owns(
    db: Database, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """31 days after deletion a project and all its documents are gone; a project deleted
    29 days ago, live projects and other projects' documents are untouched."""
    await prepare(db, settings)
    data = mongo[settings.database_name]
    seeded = seed_mix(data)
    assert owned_counts(data, "expired") == full_counts("expired")

    report = await (await job(db)).run()

    assert report is not None
    assert not report.dry_run
    assert report.count == 1
    [purged] = report.projects
    assert purged["id"] == "expired"
    assert purged["userId"] == "editor-1"
    assert purged["deleted"] == {**full_counts("expired"), PROJECTS: 1}
    assert datetime.now(UTC) - RETENTION - report.cutoff < timedelta(minutes=1)

    assert project_ids(data) == {"recent", "live", "other"}
    assert owned_counts(data, "expired") == dict.fromkeys(full_counts("expired"), 0)
    for survivor in ("recent", "live", "other"):
        assert owned_counts(data, survivor) == full_counts(survivor), survivor
    for survivor in ("recent", "live", "other"):
        assert data[PROJECTS].find_one({"_id": survivor}) == seeded[survivor]

    entries = list(data["audit_log"].find({"action": "project.purged"}))
    assert len(entries) == 1
    [entry] = entries
    assert entry["userId"] == SYSTEM_ACTOR
    assert entry["entity"] == "project"
    assert entry["entityId"] == "expired"
    assert entry["ownerId"] == "editor-1"
    assert entry["version"] == 2
    assert entry["summary"] == {"reason": "retention", "name": "Project expired"}
    # The lease is released once the sweep is over.
    assert data[LEASES].find_one({"_id": LEASE_NAME}) is None

    again = await (await job(db)).run()
    assert again is not None
    assert again.count == 0
    assert data["audit_log"].count_documents({"action": "project.purged"}) == 1


async def test_the_window_is_measured_from_now(
    db: Database, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """The project deleted 29 days ago is purged by a sweep two days later."""
    await prepare(db, settings)
    data = mongo[settings.database_name]
    seed_mix(data)

    report = await (await job(db)).run(now=datetime.now(UTC) + timedelta(days=2))

    assert report is not None
    assert [p["id"] for p in report.projects] == ["expired", "recent"]
    assert project_ids(data) == {"live", "other"}


async def test_a_dry_run_lists_what_is_due_and_deletes_nothing(
    db: Database, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """--dry-run reports the expired project and leaves every document in place."""
    await prepare(db, settings)
    data = mongo[settings.database_name]
    seed_mix(data)
    seed(data, project("older", deleted_days_ago=40, owner="editor-3"))

    report = await (await job(db)).run(dry_run=True)

    assert report is not None
    assert report.dry_run
    assert report.count == 2
    # Oldest deletion first.
    assert [(p["id"], p["userId"]) for p in report.projects] == [
        ("older", "editor-3"),
        ("expired", "editor-1"),
    ]
    assert all("deleted" not in p for p in report.projects)
    assert project_ids(data) == {"older", "expired", "recent", "live", "other"}
    for project_id in ("older", "expired", "recent", "live", "other"):
        assert owned_counts(data, project_id) == full_counts(project_id), project_id
    assert data["audit_log"].count_documents({}) == 0
    assert data[LEASES].find_one({"_id": LEASE_NAME}) is None


async def test_a_sweep_purges_more_than_one_batch(
    db: Database, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """More expired projects than one batch (100) are all purged by a single sweep."""
    await prepare(db, settings)
    data = mongo[settings.database_name]
    data[PROJECTS].insert_many(
        [project(f"old{i:03d}", deleted_days_ago=31 + i / 100) for i in range(105)]
    )
    seed(data, project("live", deleted_days_ago=None), owned=False)

    report = await (await job(db)).run()

    assert report is not None
    assert report.count == 105
    assert project_ids(data) == {"live"}
    assert data["audit_log"].count_documents({"action": "project.purged"}) == 105
    assert data[LEASES].find_one({"_id": LEASE_NAME}) is None


async def test_a_sweep_is_skipped_while_another_process_holds_the_lease(
    db: Database, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """Another replica sweeping: this one does nothing; once its lease expires, it runs."""
    await prepare(db, settings)
    data = mongo[settings.database_name]
    seed_mix(data)
    other = Lease(db, LEASE_NAME, ttl=timedelta(minutes=10), owner="replica-b:42")
    assert await other.acquire()

    clock = Clock()
    sweeper = await job(db, owner="replica-a:7", clock=clock)
    assert await sweeper.run() is None
    assert await sweeper.run(dry_run=True) is None
    assert project_ids(data) == {"expired", "recent", "live", "other"}
    assert owned_counts(data, "expired") == full_counts("expired")
    assert data["audit_log"].count_documents({}) == 0
    held = data[LEASES].find_one({"_id": LEASE_NAME})
    assert held is not None
    assert held["owner"] == "replica-b:42", "a skipped sweep leaves the holder's lease alone"

    clock.advance(timedelta(minutes=11))  # past replica-b's lease, by replica-a's clock
    report = await sweeper.run()

    assert report is not None
    assert [p["id"] for p in report.projects] == ["expired"]
    assert project_ids(data) == {"recent", "live", "other"}
    assert data[LEASES].find_one({"_id": LEASE_NAME}) is None


async def wait_for_first_purge(data: SyncDb, sweep: asyncio.Task[Any]) -> None:
    """Until the sweep has purged its first project (it is inside its first batch)."""
    started = time.monotonic()
    while data["audit_log"].count_documents({"action": "project.purged"}) == 0:
        assert not sweep.done(), "the sweep ended before purging anything"
        assert time.monotonic() - started < 10, "the sweep did not start"
        await asyncio.sleep(0.01)


async def test_a_sweep_that_lost_its_lease_stops_at_the_next_batch(
    db: Database, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """A sweep whose lease expired mid-batch and was taken by another replica does not go
    on purging while that replica holds the lease: one sweeper at a time."""
    await prepare(db, settings)
    data = mongo[settings.database_name]
    expired = [project(f"old{i:03d}", deleted_days_ago=40 + i / 100) for i in range(BATCH + 50)]
    data[PROJECTS].insert_many(expired)
    slow = await job(db, owner="replica-a:1", ttl=timedelta(minutes=10))
    # replica-b's clock is past replica-a's lease: for it, that lease has expired. (A real
    # 100 ms TTL raced the sweep: a fast batch could end before it expired.)
    later = Clock()
    later.advance(timedelta(minutes=11))
    other = Lease(db, LEASE_NAME, ttl=timedelta(minutes=10), owner="replica-b:2", clock=later)

    sweep = asyncio.create_task(slow.run())
    await wait_for_first_purge(data, sweep)
    assert await other.acquire(), "replica-a's expired lease could not be taken"
    purged_when_taken = data["audit_log"].count_documents({"action": "project.purged"})
    # Precondition: replica-b took the lease while replica-a was inside its first batch.
    assert purged_when_taken < BATCH
    report = await asyncio.wait_for(sweep, timeout=30)

    assert report is not None
    held = data[LEASES].find_one({"_id": LEASE_NAME})
    assert held is not None
    assert held["owner"] == "replica-b:2"
    # replica-a may finish the batch it had started, but no further batch.
    assert report.count <= BATCH, (
        f"replica-a purged {report.count} projects; {report.count - BATCH} of them in a "
        "batch started while replica-b held the lease"
    )
    assert data[PROJECTS].count_documents({}) >= len(expired) - BATCH


async def test_a_project_restored_during_a_sweep_keeps_what_it_owns(
    db: Database, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """An owner restores a project (restorable until purged) while the sweep is working
    through its batch: the project comes back with its versions, timelines and
    transcripts, not as a live project whose documents the sweep deleted."""
    await prepare(db, settings)
    data = mongo[settings.database_name]
    # Purged oldest deletion first: the restored project is the last of the batch.
    data[PROJECTS].insert_many(
        [project(f"old{i:03d}", deleted_days_ago=40 + i / 100) for i in range(60)]
    )
    seed(data, project("restored", deleted_days_ago=31))
    service = project_service(
        db, await UnitOfWork.for_server(db.client), owned=PURGED, cache=Cache.disabled()
    )

    sweep = asyncio.create_task((await job(db)).run())
    await wait_for_first_purge(data, sweep)
    restored = await service.restore(Actor(user_id="editor-1"), "restored", expected=2)
    assert restored.version == 3
    report = await asyncio.wait_for(sweep, timeout=30)

    assert report is not None
    doc = data[PROJECTS].find_one({"_id": "restored"})
    assert doc is not None
    assert doc["isDeleted"] is False
    counts = owned_counts(data, "restored")
    # Its documents as seeded, plus the version the restore superseded.
    expected = full_counts("restored")
    expected["project_versions"] += 1
    assert counts == expected, f"the sweep deleted what a live project owns: {counts}"


def cli_env(mongodb_uri: str, database_name: str, **extra: str) -> dict[str, str]:
    return clean_env(MONGODB_URI=mongodb_uri, MONGODB_DATABASE=database_name, **extra)


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


@pytest.mark.process
async def test_the_cli_dry_run_then_purge(
    db: Database,
    mongo: MongoClient[dict[str, Any]],
    settings: Settings,
    mongodb_uri: str,
    database_name: str,
    tmp_path: Path,
) -> None:
    """`snipix retention run --dry-run` names what is due; without it, purges it."""
    await prepare(db, settings)
    data = mongo[settings.database_name]
    # A 7-day window (SNIPIX_RETENTION_DAYS): due after 8 days, not after 6.
    seed(
        data,
        project("due", deleted_days_ago=8),
        project("kept", deleted_days_ago=6),
        project("live", deleted_days_ago=None),
    )
    env = cli_env(mongodb_uri, database_name, SNIPIX_RETENTION_DAYS="7")

    dry = run_snipix(["retention", "run", "--dry-run"], env=env, cwd=tmp_path)

    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[0].startswith("would purge 1 project(s) deleted before ")
    assert lines[0].endswith("(retention 7 days)")
    assert len(lines) == 2
    assert lines[1].split()[:2] == ["due", "owner=editor-1"]
    assert "documents=" not in lines[1]
    assert project_ids(data) == {"due", "kept", "live"}
    assert owned_counts(data, "due") == full_counts("due")
    assert error_lines(dry.stderr) == []

    purge = run_snipix(["retention", "run"], env=env, cwd=tmp_path)

    assert purge.returncode == 0, purge.stderr
    lines = purge.stdout.splitlines()
    assert lines[0].startswith("purged 1 project(s) deleted before ")
    assert lines[0].endswith("(retention 7 days)")
    assert len(lines) == 2
    assert lines[1].split()[:2] == ["due", "owner=editor-1"]
    assert lines[1].endswith(f"documents={sum(full_counts('due').values()) + 1}")
    assert project_ids(data) == {"kept", "live"}
    assert owned_counts(data, "due") == dict.fromkeys(full_counts("due"), 0)
    assert owned_counts(data, "kept") == full_counts("kept")
    entry = data["audit_log"].find_one({"action": "project.purged", "entityId": "due"})
    assert entry is not None
    assert entry["userId"] == SYSTEM_ACTOR
    assert not (tmp_path / ".snipix").exists(), "no embedded engine when MONGODB_URI is set"


@pytest.mark.process
async def test_the_cli_fails_in_one_line_while_the_lease_is_held(
    db: Database,
    mongo: MongoClient[dict[str, Any]],
    settings: Settings,
    mongodb_uri: str,
    database_name: str,
    tmp_path: Path,
) -> None:
    """Another process sweeping: the command exits 1 with one `error:` line, deleting nothing."""
    await prepare(db, settings)
    data = mongo[settings.database_name]
    seed(data, project("expired", deleted_days_ago=31))
    assert await Lease(db, LEASE_NAME, ttl=timedelta(minutes=5), owner="replica-b:42").acquire()

    for args in (["retention", "run"], ["retention", "run", "--dry-run"]):
        result = run_snipix(args, env=cli_env(mongodb_uri, database_name), cwd=tmp_path)
        assert result.returncode == 1, result.stdout + result.stderr
        assert error_lines(result.stderr) == [
            "error: another process is running the retention sweep; try again later"
        ]
        assert "Traceback" not in result.stderr
        assert "purge" not in result.stdout
    assert project_ids(data) == {"expired"}
    assert owned_counts(data, "expired") == full_counts("expired")
    held = data[LEASES].find_one({"_id": LEASE_NAME})
    assert held is not None
    assert held["owner"] == "replica-b:42"


async def test_the_service_purges_expired_projects_by_itself(
    mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """With SNIPIX_RETENTION_INTERVAL_S=1 the running service purges an expired project
    within seconds, without anyone asking."""
    app = create_app(settings.model_copy(update={"retention_interval_s": 1}))
    data = mongo[settings.database_name]
    async with running_app(app) as http:
        seed(
            data,
            project("expired", deleted_days_ago=31),
            project("recent", deleted_days_ago=29),
            project("live", deleted_days_ago=None),
        )
        started = time.monotonic()
        # Poll without blocking the loop: the sweep runs on this event loop.
        while "expired" in project_ids(data):
            assert time.monotonic() - started < 15, "the service did not purge within 15 s"
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
        assert (await http.get("/health/live")).status_code == 200
    print(f"purged by the service {elapsed:.2f}s after it became due")

    assert project_ids(data) == {"recent", "live"}
    assert owned_counts(data, "expired") == dict.fromkeys(full_counts("expired"), 0)
    assert owned_counts(data, "recent") == full_counts("recent")
    entry = data["audit_log"].find_one({"action": "project.purged", "entityId": "expired"})
    assert entry is not None
    assert entry["userId"] == SYSTEM_ACTOR


async def test_the_service_does_not_sweep_when_the_interval_is_zero(
    mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """SNIPIX_RETENTION_INTERVAL_S=0 turns the periodic sweep off."""
    app = create_app(settings.model_copy(update={"retention_interval_s": 0}))
    data = mongo[settings.database_name]
    # The control: the same service sweeping every second, on a database of its own. Once
    # it has purged its expired project, a service that sweeps would have swept by now.
    control_name = f"{settings.database_name}_control"
    control_app = create_app(
        settings.model_copy(
            update={
                "retention_interval_s": 1,
                "mongodb_database": control_name,
                "cache_prefix": control_name,
            }
        )
    )
    control = mongo[control_name]
    try:
        async with running_app(app), running_app(control_app):
            seed(data, project("expired", deleted_days_ago=31), owned=False)
            seed(control, project("expired", deleted_days_ago=31), owned=False)
            # Poll without blocking the loop: the control's sweep runs on this event loop.
            await until(
                lambda: "expired" not in project_ids(control),
                what="the control service (interval 1 s) to purge its expired project",
                interval_s=0.1,
            )
            assert project_ids(data) == {"expired"}
            assert data[LEASES].count_documents({}) == 0
    finally:
        mongo.drop_database(control_name)


async def test_a_sweep_stops_between_projects_when_the_service_shuts_down(
    db: Database, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """A shutdown during a long sweep does not wait for it: the sweep stops before the next
    project, releases its lease, and the rest is purged by a later sweep."""
    await prepare(db, settings)
    data = mongo[settings.database_name]
    data[PROJECTS].insert_many(
        [project(f"old{i:03d}", deleted_days_ago=31 + i / 100) for i in range(20)]
    )
    stop = asyncio.Event()
    sweep = asyncio.create_task((await job(db)).run(stop=stop))
    await wait_for_first_purge(data, sweep)
    stop.set()
    report = await asyncio.wait_for(sweep, timeout=30)

    assert report is not None
    assert 0 < report.count < 20
    assert data[LEASES].find_one({"_id": LEASE_NAME}) is None
    later = await (await job(db)).run()
    assert later is not None
    assert report.count + later.count == 20
    assert project_ids(data) == set()
