"""What an import stores is what the services would store: the timeline as its first save
(head, revision 1, snapshot when due), the transcript as its first upload, bucketed by the
service. Run in-process against the test engine, beside the same data saved through the
services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pymongo import MongoClient

from snipix.auth.actor import Actor
from snipix.cache.service import Cache
from snipix.catalogue import MIGRATIONS, PURGED
from snipix.db.client import Database
from snipix.db.indexes import ensure_catalogue
from snipix.db.migrations import MigrationRunner
from snipix.db.transactions import UnitOfWork
from snipix.legacy.importer import Importer, Options
from snipix.legacy.records import DEFAULT_LABEL, timeline_part, transcript_part
from snipix.projects.schemas import Media, ProjectCreate
from snipix.projects.service import project_service
from snipix.settings import Settings
from snipix.timelines.repository import TimelineRepository
from snipix.timelines.schemas import RevisionKind, TimelineState
from snipix.timelines.service import TimelineService
from snipix.transcripts.repository import TranscriptRepository
from snipix.transcripts.service import TranscriptService
from tests.legacy.samples import store_file, transcription, write

OWNER = "owner-1"
LEGACY_ID = "project_1_1757329653"
# What differs by nature between an import and a save made now: ids, dates, generations.
VARYING = {"_id", "projectId", "createdAt", "updatedAt", "generation", "requestId"}


def same_except_ids_and_dates(imported: dict[str, Any], saved: dict[str, Any]) -> None:
    assert list(imported) == list(saved)  # the same fields, in the same order
    for name, value in saved.items():
        if name not in VARYING:
            assert imported[name] == value, name


async def test_an_imported_timeline_and_transcript_are_stored_as_the_services_store_them(
    db: Database, settings: Settings, mongo: MongoClient[dict[str, Any]], tmp_path: Path
) -> None:
    """Head, revision 1 and transcript documents of an import equal those of a project
    whose first save and upload went through the services (ids and dates aside)."""
    settings = settings.model_copy(update={"timeline_snapshot_every": 1})  # a snapshot at v1
    store = store_file(1, transcript_words=0)
    record = store[LEGACY_ID]
    record["user_id"] = OWNER
    record["transcript_state"] = None
    source = write(tmp_path / "store.json", store)
    export = write(
        tmp_path / "export.json",
        {"projects": [], "transcriptions": [transcription(LEGACY_ID, 1_200)]},
    )
    # The transcription rides in a second file (export shape) and joins its project by id.
    importer = Importer(db, settings, Options(map_user={OWNER: OWNER}), cache=Cache.disabled())
    report = await importer.run([source, export])
    assert report.complete, report.as_json()
    assert [info.shape for info in report.files] == ["store", "export"]

    await MigrationRunner(db, MIGRATIONS).migrate()
    await ensure_catalogue(db, settings)
    unit = UnitOfWork(db.client, transactions=False)
    projects = project_service(db, unit, owned=PURGED, cache=Cache.disabled())
    actor = Actor(user_id=OWNER)
    created, _ = await projects.create(
        actor, ProjectCreate(name="Saved", media=Media(duration_sec=9_000))
    )
    timelines = TimelineService(
        TimelineRepository(db),
        projects,
        Cache.disabled(),
        max_bytes=settings.timeline_max_bytes,
        snapshot_every=1,
    )
    part = timeline_part(record["timeline_state"], max_bytes=settings.timeline_max_bytes)
    await timelines.save(
        actor,
        created.id,
        TimelineState.model_validate(part.state),
        expected=0,
        label=DEFAULT_LABEL,
        kind=RevisionKind.IMPORT,
    )
    transcripts = TranscriptService(
        TranscriptRepository(db),
        projects,
        bucket_words=settings.transcript_bucket_words,
        bucket_bytes=settings.transcript_bucket_bytes,
    )
    upload = transcript_part(transcription(LEGACY_ID, 1_200)).upload
    await transcripts.upload(actor, created.id, upload, expected=0)

    data = mongo[settings.database_name]
    for collection, imported_id, saved_id in (
        ("timelines", LEGACY_ID, created.id),
        ("timeline_revisions", f"{LEGACY_ID}:1", f"{created.id}:1"),
        ("timeline_snapshots", f"{LEGACY_ID}:1", f"{created.id}:1"),
        ("transcripts", LEGACY_ID, created.id),
    ):
        imported = data[collection].find_one({"_id": imported_id})
        saved = data[collection].find_one({"_id": saved_id})
        assert imported is not None, collection
        assert saved is not None, collection
        if collection == "timelines":
            # A head carries the revisions its commit may not have stored yet: the save's
            # head its own revision 1 (stored too), the import's none (it stores it first).
            assert imported["recent"] == []
            stored = data["timeline_revisions"].find_one({"_id": f"{created.id}:1"})
            assert saved["recent"] == [stored]
            imported["recent"] = saved["recent"] = []
        same_except_ids_and_dates(imported, saved)
    imported_buckets = list(data["transcript_segments"].find({"projectId": LEGACY_ID}).sort("seq"))
    saved_buckets = list(data["transcript_segments"].find({"projectId": created.id}).sort("seq"))
    assert len(imported_buckets) == len(saved_buckets) > 1
    for imported, saved in zip(imported_buckets, saved_buckets, strict=True):
        same_except_ids_and_dates(imported, saved)
    head = data["timelines"].find_one({"_id": LEGACY_ID})
    assert head is not None
    assert head["updatedAt"].isoformat() == "2025-09-08T12:00:00+00:00"  # the original date
