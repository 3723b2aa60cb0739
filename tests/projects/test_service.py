"""ProjectService rules that HTTP alone cannot provoke: a write failing half-way through a
change, the ordered-writes fallback, and two editors saving at the same moment."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from pymongo.errors import WriteError

from snipix.auth.actor import Actor
from snipix.cache.service import Cache
from snipix.catalogue import MIGRATIONS, PURGED
from snipix.db.client import MongoClient as MongoClientAsync
from snipix.db.client import connected
from snipix.db.indexes import ensure_catalogue
from snipix.db.migrations import MigrationRunner
from snipix.db.transactions import UnitOfWork, runs_concurrent_transactions
from snipix.errors import VersionMismatch
from snipix.projects.schemas import ProjectCreate, ProjectUpdate
from snipix.projects.service import project_service
from snipix.settings import Settings

OWNER = {"X-User-Id": "editor-1"}
ACTOR = Actor(user_id="editor-1", request_id="req-1")


def refuse_audit_action(mongo: MongoClient[dict[str, Any]], database: str, action: str) -> None:
    """Make the database itself refuse audit entries for one action: a real write failure
    in the middle of a change, with nothing mocked."""
    allowed = [
        "project.created",
        "project.updated",
        "project.deleted",
        "project.restored",
        "project.rolled_back",
        "project.purged",
    ]
    allowed.remove(action)
    # Recreated: the embedded engine cannot add a validator to an existing collection.
    mongo[database].drop_collection("audit_log")
    mongo[database].create_collection(
        "audit_log",
        validator={"$jsonSchema": {"properties": {"action": {"enum": allowed}}}},
    )


@pytest.fixture
async def service_client(settings: Settings) -> AsyncIterator[MongoClientAsync]:
    """The service's async client on a database migrated and indexed as at start-up."""
    async with connected(settings) as client:
        db = client[settings.database_name]
        await MigrationRunner(db, MIGRATIONS).migrate()
        await ensure_catalogue(db, settings)
        yield client


async def test_in_a_transaction_a_change_whose_audit_fails_is_not_applied(
    settings: Settings, mongo: MongoClient[dict[str, Any]], service_client: MongoClientAsync
) -> None:
    """In a transaction (replica sets, Atlas): if the audit write fails, the update is not
    acknowledged and nothing of it remains — same version, same name, no version record."""
    refuse_audit_action(mongo, settings.database_name, "project.updated")
    client = service_client
    unit = UnitOfWork(client, transactions=True)
    service = project_service(
        client[settings.database_name], unit, owned=PURGED, cache=Cache.disabled()
    )
    project, _ = await service.create(ACTOR, ProjectCreate(name="Keep me"))

    with pytest.raises(WriteError):
        await service.update(
            ACTOR, project.id, ProjectUpdate.model_validate({"name": "Lost?"}), expected=1
        )

    assert unit.transactional, "this server refused transactions; use a replica set"
    after = await service.get(ACTOR, project.id)
    assert (after.name, after.version) == ("Keep me", 1)
    db = mongo[settings.database_name]
    assert db["project_versions"].count_documents({}) == 0
    assert [e["action"] for e in db["audit_log"].find()] == ["project.created"]
    # The change is still possible from version 1 once the audit accepts it.
    await service.delete(ACTOR, project.id, expected=1)


async def test_without_transactions_a_failed_audit_leaves_a_traceable_change(
    settings: Settings, mongo: MongoClient[dict[str, Any]], service_client: MongoClientAsync
) -> None:
    """On a server without transactions (standalone mongod) the writes are ordered so a
    failure is repairable: the superseded state is recorded before the project changes."""
    refuse_audit_action(mongo, settings.database_name, "project.updated")
    client = service_client
    service = project_service(
        client[settings.database_name],
        UnitOfWork(client, transactions=False),
        owned=PURGED,
        cache=Cache.disabled(),
    )
    project, _ = await service.create(ACTOR, ProjectCreate(name="Ordered"))
    with pytest.raises(WriteError):
        await service.update(
            ACTOR, project.id, ProjectUpdate.model_validate({"name": "Renamed"}), expected=1
        )
    db = mongo[settings.database_name]
    superseded = db["project_versions"].find_one({"projectId": project.id})
    assert superseded is not None
    assert superseded["version"] == 1
    assert superseded["snapshot"]["name"] == "Ordered"


async def test_ordered_writes_give_the_same_records_as_a_transaction(
    settings: Settings, mongo: MongoClient[dict[str, Any]], service_client: MongoClientAsync
) -> None:
    """The fallback path stores the same versions and audit entries as the transactional one."""
    client = service_client
    db = client[settings.database_name]
    for transactions in (True, False):
        service = project_service(
            db, UnitOfWork(client, transactions=transactions), owned=PURGED, cache=Cache.disabled()
        )
        project, _ = await service.create(ACTOR, ProjectCreate(name=f"tx={transactions}"))
        updated = await service.update(
            ACTOR, project.id, ProjectUpdate.model_validate({"tags": ["a"]}), expected=1
        )
        await service.delete(ACTOR, project.id, expected=updated.version)
        restored = await service.restore(ACTOR, project.id, expected=None)
        assert restored.version == 4
        versions = [
            v["version"]
            for v in mongo[settings.database_name]["project_versions"].find(
                {"projectId": project.id}
            )
        ]
        actions = [
            e["action"]
            for e in mongo[settings.database_name]["audit_log"]
            .find({"entityId": project.id})
            .sort("version", 1)
        ]
        assert sorted(versions) == [1, 2, 3]
        assert actions == [
            "project.created",
            "project.updated",
            "project.deleted",
            "project.restored",
        ]


async def test_two_editors_saving_the_same_version_one_wins(
    client: httpx.AsyncClient, settings: Settings, mongo: MongoClient[dict[str, Any]]
) -> None:
    """Two saves based on the same version at the same moment: exactly one is applied, the
    other gets 412 with the current version; nothing is overwritten silently."""
    created = await client.post("/api/v1/projects", json={"name": "Shared"}, headers=OWNER)
    path = created.headers["Location"]

    results = await asyncio.gather(
        *(
            client.patch(path, json={"name": f"Edit {n}"}, headers={**OWNER, "If-Match": '"1"'})
            for n in range(4)
        )
    )

    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 412, 412, 412], [r.text for r in results]
    winner = next(r for r in results if r.status_code == 200).json()
    for loser in (r for r in results if r.status_code == 412):
        assert loser.json()["error"]["details"]["currentVersion"] == 2
    current = (await client.get(path, headers=OWNER)).json()
    assert current == winner
    db = mongo[settings.database_name]
    assert db["project_versions"].count_documents({"projectId": current["id"]}) == 1
    assert db["audit_log"].count_documents({"action": "project.updated"}) == 1


async def test_a_stale_version_is_refused_by_the_service(
    settings: Settings, service_client: MongoClientAsync
) -> None:
    """The service itself (not only HTTP) refuses a change based on an old version."""
    client = service_client
    service = project_service(
        client[settings.database_name], UnitOfWork(client), owned=PURGED, cache=Cache.disabled()
    )
    project, _ = await service.create(ACTOR, ProjectCreate(name="Versioned"))
    rename = ProjectUpdate.model_validate({"name": "v2"})
    await service.update(ACTOR, project.id, rename, expected=1)
    with pytest.raises(VersionMismatch) as refused:
        await service.update(ACTOR, project.id, rename, expected=1)
    assert refused.value.details == {"currentVersion": 2}


async def test_the_embedded_engine_gets_ordered_writes(service_client: MongoClientAsync) -> None:
    """The embedded engine refuses every other operation while a transaction is open, so
    the service does not open one there; replica sets and mongos get transactions."""
    unit = await UnitOfWork.for_server(service_client)
    assert unit.transactional is runs_concurrent_transactions(
        await service_client.admin.command("hello")
    )
    assert runs_concurrent_transactions({"setName": "atlas-abc-shard-0"})
    assert runs_concurrent_transactions({"msg": "isdbgrid"})
    assert not runs_concurrent_transactions({"isWritablePrimary": True})


async def test_reads_and_writes_side_by_side_all_succeed(client: httpx.AsyncClient) -> None:
    """Saves over "any version" (`If-Match: *`) and reads arriving together all succeed,
    and every save is applied on top of the previous one."""
    created = await client.post("/api/v1/projects", json={"name": "Busy"}, headers=OWNER)
    path = created.headers["Location"]

    async def save(version: int) -> int:
        response = await client.patch(
            path, json={"description": f"take {version}"}, headers={**OWNER, "If-Match": "*"}
        )
        return response.status_code

    async def read() -> int:
        return (await client.get("/api/v1/projects", headers=OWNER)).status_code

    statuses = await asyncio.gather(*(save(n) for n in range(6)), *(read() for _ in range(6)))
    assert statuses == [200] * 12
    final = await client.get(path, headers=OWNER)
    assert final.headers["ETag"] == '"7"'  # six saves over "any version", none lost
