"""`snipix backup` and `snipix restore` as an operator runs them: real processes against the
test engine, a database seeded through the API, restored into another, empty database."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import Binary, Decimal128, Int64, ObjectId, json_util
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.database import Database as SyncDatabase

from snipix.backup.files import JSON_OPTIONS
from snipix.backup.manifest import MANIFEST, SUFFIX
from snipix.catalogue import MIGRATIONS, NOT_BACKED_UP, PURGED
from snipix.db.indexes import catalogue
from tests.support import clean_env, run_snipix

SyncDb = SyncDatabase[dict[str, Any]]
Mongo = MongoClient[dict[str, Any]]

EDITOR = "editor-1"
OTHER = "editor-2"
ADMIN = {"X-User-Id": "ops", "X-User-Roles": "admin"}
PROJECTS = "/api/v1/projects"
OWNED = [collection for collection, _index in PURGED]
TYPES = "bson_types"
STATE: dict[str, Any] = {
    "tracks": [{"id": "v1", "kind": "video", "name": "Main"}, {"id": "a1", "kind": "audio"}],
    "clips": [
        {
            "id": "c1",
            "trackId": "v1",
            "mediaRef": "media/interview.mp4",
            "start": 0.0,
            "sourceIn": 10.0,
            "sourceOut": 12.5,
        },
        {
            "id": "c2",
            "trackId": "a1",
            "mediaRef": "media/interview.mp4",
            "start": 3.0,
            "sourceIn": 4.0,
            "sourceOut": 6.0,
        },
    ],
    "markers": [{"id": "m1", "time": 1.5, "label": "Intro", "color": "red"}],
}
TRANSCRIPT: dict[str, Any] = {
    "language": "en-GB",
    "speakers": [{"id": "host", "label": "Host"}, {"id": "guest", "label": "Guest"}],
    "segments": [
        {
            "start": 0.5,
            "end": 1.4,
            "speaker": "host",
            "words": [
                {"text": "so", "start": 0.5, "end": 0.7, "confidence": 0.9},
                {"text": "welcome", "start": 0.8, "end": 1.4, "confidence": 0.75},
            ],
        },
        {
            "start": 2.0,
            "end": 2.9,
            "speaker": "guest",
            "words": [{"text": "thanks", "start": 2.0, "end": 2.9, "speaker": "guest"}],
        },
    ],
}


def who(user: str) -> dict[str, str]:
    return {"X-User-Id": user}


async def new_project(client: httpx.AsyncClient, user: str, name: str) -> str:
    created = await client.post(
        PROJECTS,
        json={"name": name, "media": {"source": "media/interview.mp4", "durationSec": 90.0}},
        headers=who(user),
    )
    assert created.status_code == 201, created.text
    project_id: str = created.json()["id"]
    return project_id


async def edit(client: httpx.AsyncClient, user: str, project_id: str) -> None:
    """A saved timeline, two autosave patches (one with an idempotency key), a session."""
    timeline = f"{PROJECTS}/{project_id}/timeline"
    headers = who(user)
    saved = await client.put(
        timeline, json={"state": STATE}, headers={**headers, "If-Match": '"0"'}
    )
    assert saved.status_code == 200, saved.text
    for version, start, extra in [(1, 7.5, {}), (2, 8.25, {"Idempotency-Key": f"save-{user}"})]:
        patched = await client.patch(
            timeline,
            content=json.dumps([{"op": "replace", "path": "/clips/1/start", "value": start}]),
            headers={
                **headers,
                "Content-Type": "application/json-patch+json",
                "If-Match": f'"{version}"',
                **extra,
            },
        )
        assert patched.status_code == 200, patched.text
    session = await client.put(
        f"{PROJECTS}/{project_id}/session",
        json={"playheadSec": 12.5, "zoom": 2.25, "selectedClipIds": ["c1"], "panel": "effects"},
        headers=headers,
    )
    assert session.status_code == 200, session.text


async def seed(client: httpx.AsyncClient, data: SyncDb) -> dict[str, list[str]]:
    """Two users' work through the API, an audit trail (created, deleted, purged by an
    admin), a lease and a stale migration lock, and a document of every BSON type."""
    interview = await new_project(client, EDITOR, "Interview")
    await edit(client, EDITOR, interview)
    uploaded = await client.put(
        f"{PROJECTS}/{interview}/transcript",
        content=json.dumps(TRANSCRIPT),
        headers={**who(EDITOR), "Content-Type": "application/json"},
    )
    assert uploaded.status_code == 200, uploaded.text
    trashed = await new_project(client, EDITOR, "Trashed")
    assert (await client.delete(f"{PROJECTS}/{trashed}", headers=who(EDITOR))).status_code == 204
    purged = await new_project(client, EDITOR, "Purged")
    assert (await client.delete(f"{PROJECTS}/{purged}", headers=who(EDITOR))).status_code == 204
    gone = await client.delete(f"/api/v1/admin/projects/{purged}", headers=ADMIN)
    assert gone.status_code == 200, gone.text
    theirs = await new_project(client, OTHER, "Theirs")
    await edit(client, OTHER, theirs)

    now = datetime.now(UTC)
    data["leases"].insert_one({"_id": "retention", "owner": "host:1", "expiresAt": now})
    data["migrations"].insert_one(
        {"_id": "__lock__", "owner": "crashed:1", "expiresAt": now - timedelta(hours=1)}
    )
    data[TYPES].insert_many(
        [
            {
                "_id": ObjectId(),
                "int32": 7,
                "int64": Int64(7),
                "double": 7.0,
                "big": 2**40,
                "at": datetime(2024, 2, 29, 23, 59, 59, 123_000, tzinfo=UTC),
                "ref": ObjectId(),
                "decimal": Decimal128("1.10"),
                "bytes": b"\x00\xff",
                "uuid": Binary(uuid.UUID(int=1).bytes, 4),
                "none": None,
                "flag": True,
                "nested": {"list": [1, Int64(2), 2.5, {"deep": "x", "at": now}]},
            },
            {"_id": 5, "kind": "integer id"},
            {"_id": {"compound": 1, "part": "a"}, "kind": "document id"},
        ]
    )
    return {EDITOR: [interview, trashed], OTHER: [theirs]}


@pytest.fixture
async def seeded(
    client: httpx.AsyncClient, mongo: Mongo, database_name: str
) -> dict[str, list[str]]:
    """The test's database, seeded; the app's lifespan still running (as in production)."""
    return await seed(client, mongo[database_name])


@pytest.fixture
def target(mongo: Mongo) -> Iterator[str]:
    """Another, empty database on the same engine, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    mongo.drop_database(name)


def env(mongodb_uri: str, database: str) -> dict[str, str]:
    return clean_env(MONGODB_URI=mongodb_uri, MONGODB_DATABASE=database)


def snipix(args: list[str], mongodb_uri: str, database: str, cwd: Path) -> tuple[int, str, str]:
    result = run_snipix(args, env=env(mongodb_uri, database), cwd=cwd, timeout_s=120)
    return result.returncode, result.stdout, result.stderr


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def contents(data: SyncDb) -> dict[str, list[str]]:
    """Every non-empty collection a backup holds (the registry's `NOT_BACKED_UP` aside: the
    leases, the cache's invalidation journal; and the migration lock), its documents in
    `_id` order as canonical Extended JSON: exact types, field order and values."""
    result: dict[str, list[str]] = {}
    for name in sorted(data.list_collection_names()):
        if name in NOT_BACKED_UP:
            continue
        raw = data.get_collection(name, codec_options=CodecOptions(RawBSONDocument))
        docs = [
            json_util.dumps(doc, json_options=JSON_OPTIONS)
            for doc in raw.find({"_id": {"$ne": "__lock__"}}).sort("_id", 1)
        ]
        if docs:
            result[name] = docs
    return result


def read_manifest(directory: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((directory / MANIFEST).read_text())
    return manifest


def read_backup(directory: Path) -> dict[str, list[dict[str, Any]]]:
    """Every file of a backup, decoded."""
    result: dict[str, list[dict[str, Any]]] = {}
    for name, entry in read_manifest(directory)["collections"].items():
        with gzip.open(directory / entry["file"], "rt", encoding="utf-8") as lines:
            result[name] = [json_util.loads(line, json_options=JSON_OPTIONS) for line in lines]
    return result


def take_backup(
    mongodb_uri: str, database: str, tmp_path: Path, *extra: str, out: str = "backup"
) -> Path:
    directory = tmp_path / out
    code, _stdout, stderr = snipix(
        ["backup", "--out", str(directory), *extra], mongodb_uri, database, tmp_path
    )
    assert code == 0, stderr
    assert "error:" not in stderr
    return directory


def restore_lines(mongodb_uri: str, target: str, directory: Path, *extra: str) -> list[str]:
    code, stdout, stderr = snipix(
        ["restore", str(directory), *extra], mongodb_uri, target, directory.parent
    )
    assert code == 0, stderr
    return stdout.splitlines()


def summary(lines: list[str]) -> str:
    [line] = [line for line in lines if line.startswith(("restored ", "dry run: "))]
    return line


@pytest.mark.usefixtures("seeded")
@pytest.mark.process
def test_backup_then_restore_into_an_empty_database_gives_identical_documents(
    mongo: Mongo, mongodb_uri: str, database_name: str, target: str, tmp_path: Path
) -> None:
    """Every collection comes back byte-for-byte (types, field order), counts match the
    manifest, leases and the migration lock stay out, and the indexes are rebuilt."""
    source = mongo[database_name]
    expected = contents(source)
    assert {"projects", "timelines", "transcripts", "editing_sessions", TYPES} <= set(expected)

    directory = take_backup(mongodb_uri, database_name, tmp_path)

    manifest = read_manifest(directory)
    assert manifest["database"] == database_name
    assert manifest["scope"] == "all"
    assert manifest["schema"]["migrations"] == [m.id for m in MIGRATIONS]
    assert manifest["schema"]["latest"] == MIGRATIONS[-1].id
    counts = {name: entry["count"] for name, entry in manifest["collections"].items()}
    assert "leases" not in counts
    assert {name: count for name, count in counts.items() if count} == {
        name: len(docs) for name, docs in expected.items()
    }
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [MANIFEST, *(f"{name}{SUFFIX}" for name in counts)]
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".backup.")]

    lines = restore_lines(mongodb_uri, target, directory)

    total = sum(counts.values())
    # The restore migrated the empty database first; the backup's records replace its own.
    migrated = len(MIGRATIONS)
    assert summary(lines) == (
        f"restored {total} documents in {len(counts)} collections from {directory} "
        f"into database {target}: {total - migrated} inserted, {migrated} replaced, 0 unchanged"
    )
    restored = mongo[target]
    assert contents(restored) == expected
    assert restored["migrations"].find_one({"_id": "__lock__"}) is None
    assert "leases" not in restored.list_collection_names()
    for spec in catalogue():
        assert spec.name in restored[spec.collection].index_information(), spec


@pytest.mark.usefixtures("seeded")
@pytest.mark.process
def test_a_second_restore_changes_nothing(
    mongo: Mongo, mongodb_uri: str, database_name: str, target: str, tmp_path: Path
) -> None:
    """A dry run writes nothing; after a restore, a dry run has nothing to write, a changed
    document is put back, and restoring again changes nothing."""
    directory = take_backup(mongodb_uri, database_name, tmp_path)
    total = sum(e["count"] for e in read_manifest(directory)["collections"].values())

    dry = restore_lines(mongodb_uri, target, directory, "--dry-run")
    assert summary(dry).endswith(f": {total} to insert, 0 to replace, 0 unchanged; nothing written")
    assert mongo[target].list_collection_names() == []

    restore_lines(mongodb_uri, target, directory)
    restored = contents(mongo[target])

    again = restore_lines(mongodb_uri, target, directory, "--dry-run")
    assert summary(again).endswith(
        f": 0 to insert, 0 to replace, {total} unchanged; nothing written"
    )
    mongo[target]["projects"].update_one({"userId": OTHER}, {"$set": {"name": "Changed"}})
    changed = restore_lines(mongodb_uri, target, directory, "--dry-run")
    assert summary(changed).endswith(
        f": 0 to insert, 1 to replace, {total - 1} unchanged; nothing written"
    )
    [projects] = [line.split() for line in changed if line.startswith("  projects ")]
    assert projects[1:7] == ["0", "to", "insert,", "1", "to", "replace,"]

    repeat = restore_lines(mongodb_uri, target, directory)
    assert summary(repeat).endswith(f": 0 inserted, 1 replaced, {total - 1} unchanged")
    assert contents(mongo[target]) == restored
    final = restore_lines(mongodb_uri, target, directory)
    assert summary(final).endswith(f": 0 inserted, 0 replaced, {total} unchanged")
    assert contents(mongo[target]) == restored


@pytest.mark.parametrize("damage", ["flipped byte", "truncated"])
@pytest.mark.usefixtures("seeded")
@pytest.mark.process
def test_a_damaged_file_is_refused_and_nothing_is_written(
    mongo: Mongo, mongodb_uri: str, database_name: str, target: str, tmp_path: Path, damage: str
) -> None:
    """A corrupted or truncated file: exit 1, one error line naming it, an untouched database."""
    directory = take_backup(mongodb_uri, database_name, tmp_path)
    # The last file in restore order: every other one would be written before it.
    name = list(read_manifest(directory)["collections"])[-1]
    path = directory / f"{name}{SUFFIX}"
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        del data[len(data) // 2 :]
    else:
        data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    code, stdout, stderr = snipix(["restore", str(directory)], mongodb_uri, target, tmp_path)

    assert code == 1
    [line] = error_lines(stderr)
    assert line.startswith(f"error: {name}{SUFFIX} does not match the manifest"), line
    assert "Traceback" not in stderr
    assert stdout == ""
    assert mongo[target].list_collection_names() == []


@pytest.mark.usefixtures("seeded")
@pytest.mark.process
def test_a_backup_from_a_newer_schema_is_refused(
    mongo: Mongo, mongodb_uri: str, database_name: str, target: str, tmp_path: Path
) -> None:
    """A manifest naming a migration this build does not know: refused, naming it."""
    directory = take_backup(mongodb_uri, database_name, tmp_path)
    manifest = read_manifest(directory)
    manifest["schema"]["migrations"].append("0999_future_change")
    manifest["schema"]["latest"] = "0999_future_change"
    (directory / MANIFEST).write_text(json.dumps(manifest))

    for extra in ([], ["--dry-run"]):
        code, _stdout, stderr = snipix(
            ["restore", str(directory), *extra], mongodb_uri, target, tmp_path
        )
        assert code == 1
        [line] = error_lines(stderr)
        assert "newer schema" in line
        assert "0999_future_change" in line
    assert mongo[target].list_collection_names() == []


@pytest.mark.process
def test_a_user_backup_holds_only_that_users_data(
    seeded: dict[str, list[str]],
    mongo: Mongo,
    mongodb_uri: str,
    database_name: str,
    target: str,
    tmp_path: Path,
) -> None:
    """`--user`: the user's projects (deleted too), what they own, the audit entries by or
    about them, and nothing of anyone else; it restores alone."""
    source = mongo[database_name]
    mine = seeded[EDITOR]
    expected: dict[str, dict[str, Any]] = {
        "projects": {"userId": EDITOR},
        **{name: {"projectId": {"$in": mine}} for name in OWNED},
        "audit_log": {"$or": [{"userId": EDITOR}, {"ownerId": EDITOR}]},
        "migrations": {"_id": {"$ne": "__lock__"}},
    }

    directory = take_backup(mongodb_uri, database_name, tmp_path, "--user", EDITOR)

    manifest = read_manifest(directory)
    assert manifest["scope"] == {"userId": EDITOR}
    backed_up = read_backup(directory)
    assert set(backed_up) <= set(expected)
    for name, query in expected.items():
        wanted = list(source[name].find(query).sort("_id", 1))
        assert backed_up.get(name, []) == wanted, name
        assert manifest["collections"].get(name, {"count": 0})["count"] == len(wanted)
    assert {doc["_id"] for doc in backed_up["projects"]} == set(mine)
    for name in ("timelines", "timeline_revisions", "editing_sessions", "transcripts"):
        assert backed_up[name], name
    # The admin's purge of the user's project is about them, though not by them.
    assert any(
        doc["userId"] == "ops" and doc["action"] == "project.purged"
        for doc in backed_up["audit_log"]
    )
    text = "\n".join(json_util.dumps(doc) for docs in backed_up.values() for doc in docs)
    assert OTHER not in text
    assert all(project_id not in text for project_id in seeded[OTHER])

    restore_lines(mongodb_uri, target, directory)
    restored = contents(mongo[target])
    assert {name: len(docs) for name, docs in restored.items()} == {
        name: len(docs) for name, docs in backed_up.items() if docs
    }


@pytest.mark.usefixtures("seeded")
@pytest.mark.process
def test_backup_refuses_a_non_empty_directory(
    mongodb_uri: str, database_name: str, tmp_path: Path
) -> None:
    """`--out` naming a directory with files in it: exit 1, one line, nothing touched."""
    out = tmp_path / "old"
    out.mkdir()
    (out / "keep.txt").write_text("precious")

    code, stdout, stderr = snipix(
        ["backup", "--out", str(out)], mongodb_uri, database_name, tmp_path
    )

    assert code == 1
    assert error_lines(stderr) == [f"error: {out} already exists and is not an empty directory"]
    assert stdout == ""
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.process
def test_a_restore_from_a_directory_without_manifest_is_refused(
    mongo: Mongo, mongodb_uri: str, target: str, tmp_path: Path
) -> None:
    """A directory that is not a complete backup (no manifest): one line, nothing written."""
    (tmp_path / "partial").mkdir()

    code, _stdout, stderr = snipix(
        ["restore", str(tmp_path / "partial")], mongodb_uri, target, tmp_path
    )

    assert code == 1
    assert error_lines(stderr) == [
        f"error: {tmp_path / 'partial'} is not a complete snipix backup (no {MANIFEST})"
    ]
    assert mongo[target].list_collection_names() == []
