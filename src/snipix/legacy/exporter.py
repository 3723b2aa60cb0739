"""`snipix export-legacy`: the database written back as the export shape (shape 1), so the
simple API can be restored from it.

- projects in the original shape (`compat.projects.project_document`), deleted ones too
  (with `is_deleted`), dates as the original export wrote them (ISO, UTC, no zone), and
  the fields an import kept without a place in Snipix (`legacyImport.extra`) back at the
  top level;
- the current timeline state of each project in the original `timeline_state` shape
  (`compat.timeline_mapping.to_compat`), with the revision's label as `description` /
  `change_summary` (as the compatibility API reads it);
- each transcript in the original transcription shape
  (`compat.transcriptions.transcription_document`).

Streamed: projects are read in `_id` order, a batch at a time, and each transcript is
read alone; the three arrays are written to three files side by side and joined at the
end, so nothing is held for the whole database. The output appears (atomic rename) only
once it is complete. `import-legacy` of this file into an empty database gives the same
documents as the database it came from, when that database was itself imported (a
fixed point); history made through `/api/v1` is not part of the old shape (only the
current state is).
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

import orjson

from snipix.compat.projects import project_document
from snipix.compat.timeline import label_notes
from snipix.compat.timeline_mapping import to_compat
from snipix.compat.transcriptions import Transcript, transcription_document
from snipix.db.client import Database, Document
from snipix.legacy.records import format_date
from snipix.legacy.repository import HEADERS, HEADS, REVISIONS, LegacyRepository
from snipix.progress import NoProgress, Progress
from snipix.projects.schemas import Project
from snipix.timelines.repository import versioned_id
from snipix.timelines.schemas import TimelineState
from snipix.transcripts.service import stored_segment, transcript_header

BATCH: Final = 200
_HEAD_FIELDS: Final = {"_id": 1, "version": 1, "state": 1, "updatedAt": 1, "recent": 1}
_REVISION_FIELDS: Final = {"_id": 1, "label": 1, "createdAt": 1}
# compat's project answer carries these for the web app; the export shape does not.
_NOT_EXPORTED: Final = ("version", "createdAt", "updatedAt")


class ExportError(Exception):
    """The export cannot be written; one line for the operator."""


@dataclass(frozen=True, slots=True)
class ExportReport:
    path: Path
    projects: int
    timelines: int
    transcripts: int
    words: int


class _Array:
    """One JSON array written element by element, comma-separated, one per line."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.count = 0

    def add(self, value: Any) -> None:
        self.stream.write(b",\n" if self.count else b"\n")
        self.stream.write(orjson.dumps(value))
        self.count += 1


async def export(
    db: Database,
    out: Path,
    *,
    user_id: str | None = None,
    progress: Progress | None = None,
    batch: int = BATCH,
) -> ExportReport:
    progress = progress or NoProgress()
    out, parts = _places(out)
    repository = LegacyRepository(db)
    words = 0
    try:
        with parts[0].open("xb") as pr, parts[1].open("xb") as tl, parts[2].open("xb") as tr:
            projects, timelines, transcripts = _Array(pr), _Array(tl), _Array(tr)
            progress.start("export projects", None)
            async for page in repository.projects(user_id, batch=batch):
                ids = [doc["_id"] for doc in page]
                for doc in page:
                    projects.add(project_record(doc))
                await _timelines(repository, ids, timelines)
                words += await _transcripts(repository, ids, transcripts)
                progress.advance(len(page))
        _assemble(out, parts, user_id)
    except OSError as error:
        raise ExportError(f"cannot write {out}: {error.strerror or error}") from None
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
    return ExportReport(out, projects.count, timelines.count, transcripts.count, words)


def _places(out: Path) -> tuple[Path, list[Path]]:
    """`out` made absolute (and checked to be new), and three hidden files beside it."""
    out = out.absolute()
    if out.exists():
        raise ExportError(f"{out} already exists; choose a new file")
    if not out.parent.is_dir():
        raise ExportError(f"{out.parent} is not a directory")
    token = secrets.token_hex(4)
    return out, [out.parent / f".{out.name}.{token}.{name}.partial" for name in ("p", "t", "s")]


def _assemble(out: Path, parts: list[Path], user_id: str | None) -> None:
    """The three arrays joined into the export shape, then renamed into place."""
    staging = out.parent / f".{out.name}.{secrets.token_hex(4)}.partial"
    try:
        with staging.open("xb") as target:
            for name, part in zip(
                ("projects", "timeline_states", "transcriptions"), parts, strict=True
            ):
                target.write(b"{" if name == "projects" else b",\n")
                target.write(orjson.dumps(name) + b": [")
                with part.open("rb") as source:
                    shutil.copyfileobj(source, target, 1 << 20)
                target.write(b"\n]")
            tail = {
                "export_timestamp": format_date(datetime.now(UTC)),
                "user_id": user_id,
            }
            target.write(b",\n" + orjson.dumps(tail)[1:-1] + b"}\n")
            target.flush()
            os.fsync(target.fileno())
        staging.replace(out)
    finally:
        staging.unlink(missing_ok=True)


def project_record(doc: Document) -> dict[str, Any]:
    """A project in the export shape."""
    record = project_document(Project.from_document(doc))
    for name in _NOT_EXPORTED:
        record.pop(name, None)
    record["created_at"] = format_date(doc["createdAt"])
    record["updated_at"] = format_date(doc["updatedAt"])
    record["deleted_at"] = format_date(doc.get("deletedAt"))
    extra = (doc.get("legacyImport") or {}).get("extra") or {}
    for name, value in extra.items():
        record.setdefault(name, value)
    return record


async def _timelines(repository: LegacyRepository, ids: list[str], out: _Array) -> None:
    heads = await repository.by_ids(HEADS, ids, _HEAD_FIELDS)
    saved = [heads[pid] for pid in ids if pid in heads and heads[pid]["version"] >= 1]
    revisions = await repository.by_ids(
        REVISIONS, [versioned_id(head["_id"], head["version"]) for head in saved], _REVISION_FIELDS
    )
    for head in saved:
        # The head's revision, stored or still carried by the head (`recent`).
        carried = [r for r in head.get("recent") or [] if r.get("version") == head["version"]]
        revision = revisions.get(versioned_id(head["_id"], head["version"])) or (
            carried[0] if carried else {}
        )
        description, change_summary = label_notes(revision.get("label"))
        out.add(
            {
                "project_id": head["_id"],
                "timeline_state": to_compat(TimelineState.model_validate(head["state"])),
                "version": head["version"],
                "created_at": format_date(revision.get("createdAt") or head.get("updatedAt")),
                "description": description,
                "change_summary": change_summary,
            }
        )


async def _transcripts(repository: LegacyRepository, ids: list[str], out: _Array) -> int:
    headers = await repository.by_ids(HEADERS, ids)
    words = 0
    for project_id in ids:
        header = headers.get(project_id)
        if header is None:
            continue
        segments = [
            stored_segment(segment)
            async for bucket in repository.buckets(project_id, header["generation"])
            for segment in bucket["segments"]
        ]
        record = transcription_document(Transcript(transcript_header(header), segments))
        record.pop("_id", None)
        record.pop("version", None)
        record["updated_at"] = format_date(header["updatedAt"])
        record["created_at"] = record["updated_at"]
        out.add(record)
        words += int(header.get("wordCount", 0))
    return words
