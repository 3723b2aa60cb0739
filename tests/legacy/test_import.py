"""`snipix import-legacy` and `snipix export-legacy` as an operator runs them: real processes
against the test engine, legacy files of both shapes, the database inspected directly and
through both APIs."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from snipix.compat.timeline_mapping import to_compat
from snipix.legacy.records import DEFAULT_LABEL
from snipix.timelines.schemas import TimelineState
from tests.compat.samples import normalized
from tests.legacy.samples import (
    ORIGINAL_OWNER,
    Mongo,
    contents,
    error_lines,
    export_file,
    snipix,
    store_file,
    timeline_state,
    write,
)
from tests.support import SnipixProcess, clean_env

pytestmark = pytest.mark.process

DEV = "dev-user"
PLACEHOLDER_PROJECT = "68bece27fe5513fae995ff01"
DELETED_PROJECT = "68bece27fe5513fae995ff02"
INVALID_PROJECT = "68bece27fe5513fae995ff03"
NEWEST = "68bece27fe5513fae995fef9"


@pytest.fixture
def database_name(empty_database_name: str) -> str:
    """A database nothing has touched, as an import into a new deployment finds it."""
    return empty_database_name


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    report: dict[str, Any]


def run_import(
    mongodb_uri: str, database: str, tmp_path: Path, *args: str, name: str = "report"
) -> Run:
    report = tmp_path / f"{name}.json"
    code, stdout, stderr = snipix(
        ["import-legacy", *args, "--report", str(report)], mongodb_uri, database, tmp_path
    )
    data = json.loads(report.read_text()) if report.exists() else {}
    return Run(code, stdout, stderr, data)


def counts(run: Run) -> dict[str, tuple[int, int, int, int, int]]:
    return {
        name: (c["read"], c["imported"], c["alreadyPresent"], c["conflicts"], c["skipped"])
        for name, c in run.report["counts"].items()
    }


@pytest.fixture
def other_database(mongo: Mongo) -> Iterator[str]:
    """Another, empty database on the same engine, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    mongo.drop_database(name)


@pytest.fixture
def exported_sample(mongo: Mongo, mongodb_uri: str, database_name: str, tmp_path: Path) -> Run:
    """The grown sample export imported once; the original owner has an account."""
    mongo[database_name]["users"].insert_one(
        {"_id": ORIGINAL_OWNER, "email": "owner@example.com", "name": "Owner"}
    )
    source = write(tmp_path / "sample_data.json", export_file())
    return run_import(mongodb_uri, database_name, tmp_path, str(source), "--user", DEV)


def test_the_sample_export_imports_with_its_ids_dates_and_fields(
    exported_sample: Run, mongo: Mongo, database_name: str
) -> None:
    """Counts add up, every listed field and date is kept, placeholder owners go to --user,
    real owners stay, the invalid record is reported (id, field, reason) and skipped."""
    run = exported_sample
    assert run.code == 3, run.stderr  # finished, but not everything imported
    assert counts(run) == {
        "projects": (6, 5, 0, 0, 1),
        "timelines": (3, 2, 0, 0, 1),
        "transcripts": (1, 1, 0, 0, 0),
    }
    assert run.report["wordsImported"] == 20_000
    skipped = {(s["collection"], s["id"], s["field"]) for s in run.report["skipped"]}
    assert skipped == {
        ("projects", INVALID_PROJECT, "duration"),
        ("projects", INVALID_PROJECT, "name"),
        ("timelines", NEWEST, "version"),
    }
    reasons = {s["field"]: s["reason"] for s in run.report["skipped"]}
    assert reasons["name"] == "String should have at least 1 character"
    assert "version 1; only the newest is imported" in reasons["version"]
    assert f"skipped projects {INVALID_PROJECT} (" in run.stdout
    assert "incomplete: 1 project(s) skipped" in run.stderr

    data = mongo[database_name]
    original = data["projects"].find_one({"_id": NEWEST})
    assert original is not None
    assert original["userId"] == ORIGINAL_OWNER  # has an account: kept
    assert (original["name"], original["description"]) == (
        "Sample Project 3",
        "Third sample project",
    )
    assert original["createdAt"] == utc("2025-09-08T05:37:59.792")
    assert original["updatedAt"] == utc("2025-09-08T05:37:59.792")
    assert (original["version"], original["status"], original["media"]) == (1, "draft", None)

    placed = data["projects"].find_one({"_id": PLACEHOLDER_PROJECT})
    assert placed is not None
    assert placed["userId"] == DEV
    assert placed["status"] == "rendering"  # the original "processing"
    assert placed["tags"] == ["client", "wedding"]
    assert placed["createdAt"] == utc("2025-09-01T10:00:00.123")  # MongoDB keeps ms
    media = placed["media"]
    assert (media["thumbnail"], media["source"], media["trimmedSource"]) == (
        "/media/thumbnails/thumb_0834.jpg",
        "media/videos/0834de0a.mp4",
        "media/videos/0834de0a_trimmed.mp4",
    )
    assert (media["durationSec"], media["trimmedDurationSec"]) == (9000.0, 3000.5)
    assert placed["legacyImport"]["extra"] == {
        "collaborators": ["someone"],
        "metadata": {"fps": 25},
    }
    assert len(placed["legacyImport"]["checksum"]) == 64

    deleted = data["projects"].find_one({"_id": DELETED_PROJECT})
    assert deleted is not None
    assert (deleted["userId"], deleted["isDeleted"], deleted["status"]) == (DEV, True, "archived")
    assert deleted["updatedAt"] == utc("2025-08-05T07:00:00")  # +02:00 read as UTC
    assert deleted["deletedAt"] == utc("2025-08-06T00:00:00")
    assert data["projects"].find_one({"_id": INVALID_PROJECT}) is None

    head = data["timelines"].find_one({"_id": NEWEST})
    assert head is not None
    assert (head["version"], head["undoStack"], head["redoStack"]) == (1, [1], [])
    assert head["updatedAt"] == utc("2025-09-08T05:45:00.500")
    assert to_compat(TimelineState.model_validate(head["state"])) == normalized(timeline_state(1))
    revision = data["timeline_revisions"].find_one({"_id": f"{NEWEST}:1"})
    assert revision is not None
    assert (revision["kind"], revision["label"], revision["authorId"]) == (
        "import",
        DEFAULT_LABEL,
        ORIGINAL_OWNER,
    )
    labelled = data["timeline_revisions"].find_one({"_id": f"{PLACEHOLDER_PROJECT}:1"})
    assert labelled is not None
    assert labelled["label"] == "Quick Save\nTimeline saved via quick save"

    header = data["transcripts"].find_one({"_id": PLACEHOLDER_PROJECT})
    assert header is not None
    assert (header["wordCount"], header["segmentCount"], header["version"]) == (20_000, 800, 1)
    assert header["updatedAt"] == utc("2025-09-08T06:00:00.250")
    assert header["metadata"] == {
        "model": "whisper-base",
        "processingTimeSec": 12.5,
        "confidence": 0.91,
        "complete": True,
        "edited": True,
        "speakerCount": 2,
    }
    buckets = list(data["transcript_segments"].find({"projectId": PLACEHOLDER_PROJECT}))
    assert len(buckets) == header["bucketCount"] > 1
    assert sum(bucket["wordCount"] for bucket in buckets) == 20_000
    assert all(bucket["wordCount"] <= 500 for bucket in buckets)

    audit = data["audit_log"].find_one({"entityId": PLACEHOLDER_PROJECT})
    assert audit is not None
    assert (audit["action"], audit["userId"], audit["ownerId"]) == (
        "project.imported",
        "system:legacy-import",
        DEV,
    )


async def test_imported_projects_read_back_through_both_apis(
    exported_sample: Run, client: httpx.AsyncClient
) -> None:
    """The imported project reads back through /api/v1 and the web app's /projects, its
    timeline is revision 1 of /api/v1 history (undoable), and the transcription reads back
    in the original shape."""
    assert exported_sample.code == 3
    owner = {"X-User-Id": ORIGINAL_OWNER}
    project = await client.get(f"/api/v1/projects/{NEWEST}", headers=owner)
    assert project.status_code == 200, project.text
    assert project.json()["createdAt"] == "2025-09-08T05:37:59.792000Z"
    assert project.headers["ETag"] == '"1"'
    listed = await client.get("/api/v1/projects", headers=owner)
    assert NEWEST in [item["id"] for item in listed.json()["items"]]

    compat = await client.get(f"/projects/{NEWEST}", headers=owner)
    assert compat.status_code == 200, compat.text
    body = compat.json()["data"]
    assert (body["_id"], body["name"], body["status"]) == (NEWEST, "Sample Project 3", "active")
    assert body["created_at"] == "2025-09-08T05:37:59.792000Z"

    history = await client.get(f"/api/v1/projects/{NEWEST}/timeline/history", headers=owner)
    assert history.status_code == 200, history.text
    [first] = history.json()["items"]
    assert (first["version"], first["kind"], first["undoable"]) == (1, "import", True)
    assert first["createdAt"] == "2025-09-08T05:45:00.500000Z"
    saved = await client.get(f"/timeline/{NEWEST}", headers=owner)
    assert saved.json()["data"]["timeline_state"] == normalized(timeline_state(1))
    undone = await client.post(
        f"/api/v1/projects/{NEWEST}/timeline/undo", headers={**owner, "If-Match": '"1"'}
    )
    assert undone.status_code == 200, undone.text
    assert undone.json()["state"]["clips"] == []

    dev = {"X-User-Id": DEV}
    transcription = await client.get(f"/transcriptions/{PLACEHOLDER_PROJECT}", headers=dev)
    assert transcription.status_code == 200, transcription.text
    data = transcription.json()["data"]
    assert sum(len(segment["words"]) for segment in data["segments"]) == 20_000
    assert data["segments"][1]["edited_text"] == "corrected"
    assert data["speakers"] == {"host": "Host", "guest": "Guest"}
    window = await client.get(
        f"/api/v1/projects/{PLACEHOLDER_PROJECT}/transcript/segments?from=0&to=30", headers=dev
    )
    assert window.status_code == 200, window.text
    assert window.json()["items"][0]["id"] == "seg-0"


def test_the_keyed_store_imports_streamed_with_placeholder_owners(
    mongo: Mongo, mongodb_uri: str, database_name: str, tmp_path: Path
) -> None:
    """The store shape is detected and read as a stream above the threshold: `test_user`
    projects go to --user, timeline states become revision 1, word lists become segments."""
    source = write(tmp_path / "temp_projects.json", store_file(4))
    run = run_import(
        mongodb_uri, database_name, tmp_path, str(source), "--user", DEV, "--stream-above", "0"
    )
    assert run.code == 0, run.stderr
    assert run.report["files"][0]["shape"] == "store"
    assert run.report["files"][0]["streamed"] is True
    assert counts(run) == {
        "projects": (4, 4, 0, 0, 0),
        "timelines": (3, 3, 0, 0, 0),
        "transcripts": (2, 2, 0, 0, 0),
    }
    data = mongo[database_name]
    project = data["projects"].find_one({"_id": "project_1_1757329653"})
    assert project is not None
    assert (project["userId"], project["media"]["source"]) == (DEV, "media/videos/0.mp4")
    assert project["createdAt"] == utc("2025-09-08T11:00:53")
    assert data["timelines"].find_one({"_id": "project_3_1757329655"}) is None  # null state
    header = data["transcripts"].find_one({"_id": "project_1_1757329653"})
    assert header is not None
    assert header["wordCount"] == 300
    assert header["language"] == "en"
    segments = [
        segment
        for bucket in data["transcript_segments"].find({"projectId": "project_1_1757329653"})
        for segment in bucket["segments"]
    ]
    assert segments[0]["id"] == "s000000"
    assert all(len(segment["words"]) <= 100 for segment in segments)
    assert sum(len(segment["words"]) for segment in segments) == 300


@pytest.mark.parametrize("streamed", [False, True], ids=["parsed", "streamed"])
def test_a_truncated_file_is_refused_with_line_and_column_and_nothing_is_written(
    mongo: Mongo, mongodb_uri: str, database_name: str, tmp_path: Path, streamed: bool
) -> None:
    """A file cut off mid-record (like the original temp_projects.json) or broken in the
    middle: one error line with line and column, exit 1, and not a single collection made."""
    whole = json.dumps(export_file(transcript_words=200), indent=2)
    cut = whole[: whole.index('"name": "Sample Project 1"') + len('"name": ')]
    broken = whole.replace('"Sample Project 2",', '"Sample Project 2",,', 1)
    extra = ["--stream-above", "0"] if streamed else []
    for name, text in (("truncated.json", cut), ("broken.json", broken)):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        try:
            json.loads(text)
        except json.JSONDecodeError as error:
            line, column = error.lineno, error.colno
        run = run_import(mongodb_uri, database_name, tmp_path, str(path), "--user", DEV, *extra)
        assert run.code == 1, run.stdout
        [message] = error_lines(run.stderr)
        assert message.startswith(f"error: {path}: ")
        assert message.endswith(f"at line {line}, column {column}; nothing was written")
        assert run.report["error"] == {
            "file": str(path),
            "line": line,
            "column": column,
            "message": run.report["error"]["message"],
        }
    assert "unexpected end of file" in json.dumps(
        run_import(mongodb_uri, database_name, tmp_path, str(tmp_path / "truncated.json")).report
    )
    assert mongo[database_name].list_collection_names() == []


def test_a_second_run_adds_nothing_and_a_changed_record_is_a_conflict(
    mongo: Mongo, mongodb_uri: str, database_name: str, tmp_path: Path
) -> None:
    """Running the same file again imports nothing and changes no document; a record changed
    in the file is a reported conflict, left alone until --overwrite replaces it."""
    store = store_file(3, transcript_words=40)
    source = write(tmp_path / "store.json", store)
    first = run_import(mongodb_uri, database_name, tmp_path, str(source), "--user", DEV)
    assert first.code == 0, first.stderr
    before = contents(mongo[database_name])

    again = run_import(mongodb_uri, database_name, tmp_path, str(source), "--user", DEV)
    assert again.code == 0, again.stderr
    assert counts(again)["projects"] == (3, 0, 3, 0, 0)
    assert counts(again)["timelines"] == (2, 0, 2, 0, 0)
    assert contents(mongo[database_name]) == before

    store["project_2_1757329654"]["name"] = "Renamed in the old app"
    changed = write(tmp_path / "changed.json", store)
    conflict = run_import(mongodb_uri, database_name, tmp_path, str(changed), "--user", DEV)
    assert conflict.code == 3
    assert counts(conflict)["projects"] == (3, 0, 2, 1, 0)
    [entry] = conflict.report["conflicts"]
    assert entry["id"] == "project_2_1757329654"
    assert "pass --overwrite" in entry["reason"]
    assert contents(mongo[database_name]) == before

    replaced = run_import(
        mongodb_uri, database_name, tmp_path, str(changed), "--user", DEV, "--overwrite"
    )
    assert replaced.code == 0, replaced.stderr
    assert counts(replaced)["projects"] == (3, 1, 2, 0, 0)
    project = mongo[database_name]["projects"].find_one({"_id": "project_2_1757329654"})
    assert project is not None
    assert (project["name"], project["version"]) == ("Renamed in the old app", 1)
    assert (
        mongo[database_name]["timeline_revisions"].count_documents(
            {"projectId": "project_2_1757329654"}
        )
        == 1
    )


@pytest.mark.timeout(600)
def test_a_run_killed_half_way_and_run_again_ends_in_the_same_database(
    mongo: Mongo, mongodb_uri: str, database_name: str, other_database: str, tmp_path: Path
) -> None:
    """SIGKILL of the real import process mid-way (projects half written), then the same
    command again: every collection ends exactly as after one uninterrupted run."""
    total = 60
    source = write(tmp_path / "store.json", store_file(total, transcript_words=30), indent=None)
    args = ["import-legacy", str(source), "--user", DEV, "--batch", "5", "--stream-above", "0"]
    env = clean_env(MONGODB_URI=mongodb_uri, MONGODB_DATABASE=database_name, LOG_LEVEL="WARNING")
    process = SnipixProcess(args, env=env, cwd=tmp_path, log_path=tmp_path / "killed.log").start()
    projects = mongo[database_name]["projects"]
    deadline = time.monotonic() + 240
    try:
        while projects.count_documents({}) < 10:
            assert process.process is not None
            assert process.process.poll() is None, process.output()
            assert time.monotonic() < deadline, "the import wrote no project in time"
            time.sleep(0.02)
        process.signal(signal.SIGKILL)
        process.wait()
    finally:
        process.kill()
    written = projects.count_documents({})
    assert 10 <= written < total, f"killed too late ({written} of {total} projects)"

    code, stdout, stderr = snipix(args[:], mongodb_uri, database_name, tmp_path)
    assert code == 0, stderr
    assert f"imported {total - written} projects" in stdout

    code, _stdout, stderr = snipix(args[:], mongodb_uri, other_database, tmp_path)
    assert code == 0, stderr
    resumed, uninterrupted = contents(mongo[database_name]), contents(mongo[other_database])
    assert set(resumed) == set(uninterrupted)
    for name in uninterrupted:
        assert resumed[name] == uninterrupted[name], name


def test_export_then_import_into_an_empty_database_gives_identical_documents(
    exported_sample: Run,
    mongo: Mongo,
    mongodb_uri: str,
    database_name: str,
    other_database: str,
    tmp_path: Path,
) -> None:
    """export-legacy writes the export shape back; importing it into an empty database
    gives the same documents (a fixed point), and exporting that gives the same file."""
    assert exported_sample.code == 3
    out = tmp_path / "exported.json"
    code, stdout, stderr = snipix(
        ["export-legacy", "--out", str(out)], mongodb_uri, database_name, tmp_path
    )
    assert code == 0, stderr
    assert stdout.strip().startswith("exported 5 projects, 2 timelines and 1 transcripts")
    exported = json.loads(out.read_text())
    assert set(exported) == {
        "projects",
        "timeline_states",
        "transcriptions",
        "export_timestamp",
        "user_id",
    }
    by_id = {project["_id"]: project for project in exported["projects"]}
    assert by_id[NEWEST]["created_at"] == "2025-09-08T05:37:59.792000"
    assert by_id[PLACEHOLDER_PROJECT]["status"] == "processing"
    assert by_id[PLACEHOLDER_PROJECT]["collaborators"] == ["someone"]
    assert by_id[DELETED_PROJECT]["is_deleted"] is True
    [newest] = [t for t in exported["timeline_states"] if t["project_id"] == NEWEST]
    assert newest["timeline_state"] == normalized(timeline_state(1))

    # The owners have no accounts in the new database: the operator vouches for them.
    again = run_import(
        mongodb_uri,
        other_database,
        tmp_path,
        str(out),
        "--map-user",
        f"{ORIGINAL_OWNER}={ORIGINAL_OWNER}",
        "--map-user",
        f"{DEV}={DEV}",
        name="again",
    )
    assert again.code == 0, again.stdout + again.stderr
    source = contents(mongo[database_name])
    source.pop("users")
    assert contents(mongo[other_database]) == source

    out_again = tmp_path / "exported-again.json"
    code, _stdout, stderr = snipix(
        ["export-legacy", "--out", str(out_again)], mongodb_uri, other_database, tmp_path
    )
    assert code == 0, stderr
    second = json.loads(out_again.read_text())
    second.pop("export_timestamp")
    exported.pop("export_timestamp")
    assert second == exported


def test_owners_are_resolved_or_the_project_is_skipped(
    mongo: Mongo, mongodb_uri: str, database_name: str, tmp_path: Path
) -> None:
    """Without --user a placeholder owner is skipped (nothing attached to a made-up user),
    an unknown real owner is skipped until --map-user names one, --user-email must name an
    account, and a --user without an account is accepted with a notice."""
    store = store_file(2, transcript_words=10)
    store["project_2_1757329654"]["user_id"] = "someone-gone"
    source = write(tmp_path / "store.json", store)

    nobody = run_import(mongodb_uri, database_name, tmp_path, str(source), "--dry-run")
    assert nobody.code == 3
    reasons = {s["id"]: s["reason"] for s in nobody.report["skipped"]}
    assert "pass --user or --user-email" in reasons["project_1_1757329653"]
    assert "--map-user someone-gone=USER_ID" in reasons["project_2_1757329654"]
    assert mongo[database_name].list_collection_names() == []  # a dry run writes nothing

    code, _stdout, stderr = snipix(
        ["import-legacy", str(source), "--user-email", "nobody@example.com"],
        mongodb_uri,
        database_name,
        tmp_path,
    )
    assert code == 2
    assert error_lines(stderr) == ["error: --user-email: no account with email nobody@example.com"]

    mongo[database_name]["users"].insert_one({"_id": "acc-1", "email": "ed@example.com"})
    mapped = run_import(
        mongodb_uri,
        database_name,
        tmp_path,
        str(source),
        "--user-email",
        "Ed@Example.com",
        "--map-user",
        "someone-gone=acc-1",
    )
    assert mapped.code == 0, mapped.stdout + mapped.stderr
    owners = {doc["_id"]: doc["userId"] for doc in mongo[database_name]["projects"].find()}
    assert owners == {"project_1_1757329653": "acc-1", "project_2_1757329654": "acc-1"}

    code, stdout, _stderr = snipix(
        ["import-legacy", str(source), "--user", "local-dev", "--dry-run"],
        mongodb_uri,
        database_name,
        tmp_path,
    )
    assert "notice: --user local-dev has no account in users" in stdout
